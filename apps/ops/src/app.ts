import type { NatsConnection } from '@nats-io/transport-node';
import type { Sql } from '@spywatcher/db';
import {
  type Auth,
  buildService,
  type Registry,
  type ServiceInstance,
  type ServiceOptions,
} from '@spywatcher/service';
import { registerActivityMetrics } from './activity-metrics.ts';
import { registerDiskMetrics } from './disk-metrics.ts';
import { registerHealthMetrics } from './health-metrics.ts';
import { registerJobMetrics } from './job-metrics.ts';
import { OPERATION_IDS } from './operation-ids.ts';
import type { Ops } from './ops.ts';
import { backupRoutes } from './routes/backups.ts';
import { healthRoutes } from './routes/health.ts';
import { jobRoutes } from './routes/jobs.ts';
import { maintenanceRoutes } from './routes/maintenance.ts';
import { restoreRoutes } from './routes/restores.ts';

export interface OpsDeps {
  sql: Sql;
  nats: NatsConnection;
  auth: Auth;
  metrics: Registry;
  ops: Ops;
  /** Directories whose file systems /metrics reports besides BACKUP_DIR (OPS_DISK_PATHS). */
  diskPaths?: readonly string[];
  logger?: ServiceOptions['logger'];
  loggerInstance?: ServiceOptions['loggerInstance'];
}

/** Builds the ops service from its dependencies; no I/O happens here. */
export async function buildApp(deps: OpsDeps): Promise<ServiceInstance> {
  const app = await buildService({
    operationIds: OPERATION_IDS,
    name: 'ops',
    version: '0.1.0',
    description: 'Backups, restores, restore drills, maintenance and the database health report.',
    sql: deps.sql,
    nats: deps.nats,
    metrics: deps.metrics,
    auth: deps.auth,
    logger: deps.logger,
    loggerInstance: deps.loggerInstance,
    tags: [
      { name: 'backups', description: 'pg_dump backups proven restorable by verification' },
      { name: 'restores', description: 'Safe restores into a database' },
      { name: 'maintenance', description: 'VACUUM, ANALYZE and REINDEX with a dry-run plan' },
      { name: 'jobs', description: 'Long-running operations: status, progress, cancel' },
      { name: 'health', description: 'Database health report' },
    ],
  });
  const metrics = registerHealthMetrics(deps.metrics, () => deps.ops.health());
  registerJobMetrics(deps.metrics, deps.sql);
  registerActivityMetrics(deps.metrics, deps.sql);
  registerDiskMetrics(deps.metrics, [deps.ops.catalogue.dir, ...(deps.diskPaths ?? [])]);
  backupRoutes(app, deps);
  restoreRoutes(app, deps);
  maintenanceRoutes(app, deps);
  jobRoutes(app, deps);
  healthRoutes(app, { ...deps, onReport: metrics.record });
  return app;
}
