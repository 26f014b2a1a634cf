import type { NatsConnection } from '@nats-io/transport-node';
import type { Sql } from '@spywatcher/db';
import {
  type Auth,
  buildService,
  type Registry,
  type ServiceInstance,
  type ServiceOptions,
  standbyCheck,
} from '@spywatcher/service';
import { OPERATION_IDS } from './operation-ids.ts';
import { registerProjections } from './projections/index.ts';
import { messageRoutes } from './routes/messages.ts';
import { searchRoutes } from './routes/search.ts';
import { timelineRoutes } from './routes/timeline.ts';

export interface SearchDeps {
  sql: Sql;
  /** Pool for search reads (a replica via SEARCH_DATABASE_URL); defaults to `sql`; closed with the app. */
  searchSql?: Sql;
  /**
   * Pool for analytics reads opened with ANALYTICS_SETTINGS (createAnalyticsSql); without it each
   * analytics query runs in a transaction that sets them. Closed with the app.
   */
  analyticsSql?: Sql;
  /** /ready fails when the read pool's replica is further behind than this (default 30 s). */
  replicaMaxLagMs?: number;
  nats: NatsConnection;
  auth: Auth;
  metrics: Registry;
  logger?: ServiceOptions['logger'];
  loggerInstance?: ServiceOptions['loggerInstance'];
}

/** Builds the search service from its dependencies; no I/O happens here. */
export async function buildApp(deps: SearchDeps): Promise<ServiceInstance> {
  const app = await buildService({
    operationIds: OPERATION_IDS,
    name: 'search',
    version: '0.1.0',
    description:
      'Read side: Discord-style full-text message search, user timelines and analytics read models.',
    sql: deps.sql,
    nats: deps.nats,
    metrics: deps.metrics,
    auth: deps.auth,
    // The read pool may be a replica: /ready shows whether it streams and how far behind it is.
    readiness: deps.searchSql
      ? { search_database: standbyCheck(deps.searchSql, deps.replicaMaxLagMs ?? 30_000) }
      : undefined,
    logger: deps.logger,
    loggerInstance: deps.loggerInstance,
  });
  // Analytics read models are reads too: they come from the read pool (a replica) when it is set.
  await registerProjections(app, { ...deps, readSql: deps.searchSql });
  if (deps.searchSql) app.addHook('onClose', async () => deps.searchSql!.end({ timeout: 5 }));
  if (deps.analyticsSql) app.addHook('onClose', async () => deps.analyticsSql!.end({ timeout: 5 }));
  searchRoutes(app, { sql: deps.searchSql ?? deps.sql, auth: deps.auth });
  messageRoutes(app, { sql: deps.searchSql ?? deps.sql, auth: deps.auth });
  timelineRoutes(app, { sql: deps.searchSql ?? deps.sql, auth: deps.auth });
  return app;
}
