import { startProjectionRunner } from '@spywatcher/projections';
import { startService } from '@spywatcher/service';
import { buildApp } from './app.ts';
import { createAnalyticsSql } from './projections/analytics.ts';
import { PROJECTIONS } from './projections/definitions.ts';
import { projectionEnv } from './projections/index.ts';
import { createSearchSql, searchEnv } from './search/pool.ts';

await startService({
  name: 'search',
  defaultPort: 3002,
  env: { ...projectionEnv, ...searchEnv },
  build: async (rt) => ({
    app: await buildApp({
      ...rt,
      searchSql: createSearchSql(rt.config),
      replicaMaxLagMs: rt.config.SEARCH_REPLICA_MAX_LAG_MS,
      // Session settings do not pass through PgBouncer: there each query sets them in a transaction.
      analyticsSql: rt.config.DATABASE_PGBOUNCER ? undefined : createAnalyticsSql(rt.config),
      loggerInstance: rt.logger,
    }),
    // The projection runner lives in the read side (see apps/search/README.md, "Projections and analytics").
    stop: rt.config.PROJECTIONS_RUNNER
      ? startProjectionRunner({
          ...rt,
          projections: PROJECTIONS,
          pollMs: rt.config.PROJECTIONS_POLL_MS,
          batchSize: rt.config.PROJECTIONS_BATCH_SIZE,
        }).stop
      : undefined,
  }),
});
