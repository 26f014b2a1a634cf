import type { NatsConnection } from '@nats-io/transport-node';
import { PartitionCache, type Sql } from '@spywatcher/db';
import { DEFAULT_NATS_NAMES, type NatsNames } from '@spywatcher/events';
import {
  type Auth,
  buildService,
  type Registry,
  type ServiceInstance,
  type ServiceOptions,
} from '@spywatcher/service';
import { createIngestMetrics, type IngestMetrics } from './metrics.ts';
import { OPERATION_IDS } from './operation-ids.ts';
import type { WriteGate } from './pause.ts';
import { eventRoutes } from './routes/events.ts';

export interface IngestDeps {
  sql: Sql;
  nats: NatsConnection;
  auth: Auth;
  metrics: Registry;
  logger?: ServiceOptions['logger'];
  loggerInstance?: ServiceOptions['loggerInstance'];
  names?: NatsNames;
  /** Shared with the consumer so both write paths remember the same partitions. */
  cache?: PartitionCache;
  /** Shared with the consumer so /metrics shows both paths. */
  ingestMetrics?: IngestMetrics;
  /** Events and bytes accepted per POST /v1/events. */
  maxEvents?: number;
  maxBytes?: number;
  /** Closed while ops holds the writers around a restore (pause.ts). */
  gate?: WriteGate;
  /** Extra readiness checks (main adds the consumer's). */
  readiness?: ServiceOptions['readiness'];
}

/** Builds the ingest service from its dependencies; no I/O happens here. */
export async function buildApp(deps: IngestDeps): Promise<ServiceInstance> {
  const maxBytes = deps.maxBytes ?? 5 * 1024 * 1024;
  const app = await buildService({
    operationIds: OPERATION_IDS,
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
    bodyLimit: maxBytes,
    readiness: deps.readiness,
    tags: [{ name: 'events', description: 'Write and read events of the log' }],
  });
  await app.register(eventRoutes, {
    sql: deps.sql,
    nats: deps.nats,
    auth: deps.auth,
    names: deps.names ?? DEFAULT_NATS_NAMES,
    cache: deps.cache ?? new PartitionCache(),
    metrics: deps.ingestMetrics ?? createIngestMetrics(deps.metrics),
    maxEvents: deps.maxEvents ?? 1000,
    maxBytes,
    gate: deps.gate,
  });
  return app;
}
