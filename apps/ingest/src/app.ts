import type { NatsConnection } from '@nats-io/transport-node';
import type { Sql } from '@spywatcher/db';
import {
  type Auth,
  buildService,
  type Registry,
  type ServiceInstance,
  type ServiceOptions,
} from '@spywatcher/service';

export interface IngestDeps {
  sql: Sql;
  nats: NatsConnection;
  auth: Auth;
  metrics: Registry;
  logger?: ServiceOptions['logger'];
  loggerInstance?: ServiceOptions['loggerInstance'];
}

/** Builds the ingest service from its dependencies; no I/O happens here. */
export async function buildApp(deps: IngestDeps): Promise<ServiceInstance> {
  const app = await buildService({
    name: 'ingest',
    version: '0.1.0',
    description:
      'Write side: validates, deduplicates and appends SpyWatcher events to the partitioned event log (NATS JetStream and HTTP).',
    sql: deps.sql,
    nats: deps.nats,
    metrics: deps.metrics,
    auth: deps.auth,
    logger: deps.logger,
    loggerInstance: deps.loggerInstance,
  });
  return app;
}
