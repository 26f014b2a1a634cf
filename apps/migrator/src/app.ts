import type { NatsConnection } from '@nats-io/transport-node';
import type { Sql } from '@spywatcher/db';
import {
  type Auth,
  buildService,
  type Registry,
  type ServiceInstance,
  type ServiceOptions,
} from '@spywatcher/service';
import type { TokenCipher } from './import/token-cipher.ts';
import { OPERATION_IDS } from './operation-ids.ts';
import { importRoutes } from './routes/imports.ts';
import { migrationRoutes } from './routes/migrations.ts';

export interface MigratorDeps {
  sql: Sql;
  nats: NatsConnection;
  auth: Auth;
  metrics: Registry;
  logger?: ServiceOptions['logger'];
  loggerInstance?: ServiceOptions['loggerInstance'];
  /** Directory POST /v1/imports may read legacy SQLite files from; unset turns the endpoint off. */
  importDir?: string;
  /** Encrypts the legacy OAuth tokens imports store (TOKEN_ENCRYPTION_KEYS); null: not imported. */
  tokens?: TokenCipher | null;
  /** Import runs' heartbeat and abandon threshold (IMPORT_JOB_HEARTBEAT_MS, IMPORT_JOB_ABANDON_AFTER_MS). */
  importJobs?: { heartbeatMs: number; abandonAfterMs: number };
}

/** Builds the migrator service from its dependencies; no I/O happens here. */
export async function buildApp(deps: MigratorDeps): Promise<ServiceInstance> {
  const app = await buildService({
    operationIds: OPERATION_IDS,
    name: 'migrator',
    version: '0.1.0',
    description:
      'Schema migrations, partition upkeep and legacy SQLite imports for the SpyWatcher event log.',
    sql: deps.sql,
    nats: deps.nats,
    metrics: deps.metrics,
    auth: deps.auth,
    logger: deps.logger,
    loggerInstance: deps.loggerInstance,
    tags: [{ name: 'migrations', description: 'Schema version and migration history' }],
  });
  migrationRoutes(app, { sql: deps.sql });
  importRoutes(app, {
    sql: deps.sql,
    auth: deps.auth,
    importDir: deps.importDir,
    tokens: deps.tokens ?? null,
    jobHeartbeatMs: deps.importJobs?.heartbeatMs,
    jobAbandonAfterMs: deps.importJobs?.abandonAfterMs,
  });
  return app;
}
