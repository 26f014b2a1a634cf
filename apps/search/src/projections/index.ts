import type { Sql } from '@spywatcher/db';
import { registerProjectionMetrics } from '@spywatcher/projections';
import { type Auth, env, type Registry, type ServiceInstance } from '@spywatcher/service';
import { analyticsRoutes } from '../routes/analytics.ts';
import { projectionRoutes } from '../routes/projections.ts';
import { PROJECTIONS } from './definitions.ts';

/** The search service's own variables for the projection runner. */
export const projectionEnv = {
  PROJECTIONS_RUNNER: env.bool('Run the projection runner in this search instance', true),
  PROJECTIONS_POLL_MS: env.int('Safety-net poll interval of the projection runner (ms)', 5000, { min: 100 }),
  PROJECTIONS_BATCH_SIZE: env.int('Events per projection batch (one transaction each)', 5000, {
    min: 1,
    max: 1_000_000,
  }),
};

/** Analytics and projection routes plus the projection status gauges. */
export async function registerProjections(
  app: ServiceInstance,
  deps: { sql: Sql; analyticsSql?: Sql; readSql?: Sql; auth: Auth; metrics: Registry },
): Promise<void> {
  registerProjectionMetrics(deps.metrics, deps.sql, PROJECTIONS);
  await analyticsRoutes(app, { sql: deps.readSql ?? deps.sql, analyticsSql: deps.analyticsSql });
  await projectionRoutes(app, deps);
}
