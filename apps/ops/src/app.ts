import type { NatsConnection } from '@nats-io/transport-node';
import type { Sql } from '@spywatcher/db';
import {
  type Auth,
  buildService,
  type Registry,
  type ServiceInstance,
  type ServiceOptions,
} from '@spywatcher/service';

export interface OpsDeps {
  sql: Sql;
  nats: NatsConnection;
  auth: Auth;
  metrics: Registry;
  logger?: ServiceOptions['logger'];
  loggerInstance?: ServiceOptions['loggerInstance'];
}

/** Builds the ops service from its dependencies; no I/O happens here. */
export async function buildApp(deps: OpsDeps): Promise<ServiceInstance> {
  const app = await buildService({
    name: 'ops',
    version: '0.1.0',
    description: 'Backups, restores, restore drills, maintenance and the database health report.',
    sql: deps.sql,
    nats: deps.nats,
    metrics: deps.metrics,
    auth: deps.auth,
    logger: deps.logger,
    loggerInstance: deps.loggerInstance,
  });
  return app;
}
