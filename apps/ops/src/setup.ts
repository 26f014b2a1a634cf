import type { NatsConnection } from '@nats-io/transport-node';
import { type Sql, withDatabase } from '@spywatcher/db';
import type { NatsNames } from '@spywatcher/events';
import type { Auth, ConfigOf } from '@spywatcher/service';
import { type BackupEnv, removeScratch } from './backups.ts';
import { BackupCatalogue } from './catalogue.ts';
import type { opsEnv } from './config.ts';
import { natsFence } from './fence.ts';
import { type Job, JobRunner } from './jobs.ts';
import { serveOpsRequests } from './nats-requests.ts';
import { createOffsite } from './offsite.ts';
import { Ops } from './ops.ts';
import { pgEnv, redactSecrets } from './pg-tools.ts';
import { type ScheduleConfig, startSchedule } from './schedule.ts';

export type OpsConfig = ConfigOf<typeof opsEnv> & { DATABASE_URL: string };

/** Wires the ops domain from configuration; opens nothing by itself. */
export function createOps(
  config: OpsConfig,
  deps: {
    sql: Sql;
    nats?: NatsConnection;
    names: NatsNames;
    onError?: (msg: string, err: unknown) => void;
    onUpdate?: (job: Job) => void;
  },
): Ops {
  const { password } = pgEnv(config.DATABASE_URL);
  const backups: BackupEnv = {
    sql: deps.sql,
    databaseUrl: config.DATABASE_URL,
    adminUrl: withDatabase(config.DATABASE_URL, config.OPS_ADMIN_DATABASE),
    catalogue: new BackupCatalogue(config.BACKUP_DIR),
    pgDump: config.PG_DUMP_PATH,
    pgRestore: config.PG_RESTORE_PATH,
    compression: config.BACKUP_COMPRESSION,
    lockWaitTimeoutMs: config.BACKUP_LOCK_WAIT_TIMEOUT_MS,
    restoreJobs: config.RESTORE_JOBS,
    restoreTargets: config.OPS_RESTORE_TARGETS,
    offsite: config.OPS_S3_BUCKET
      ? createOffsite({
          bucket: config.OPS_S3_BUCKET,
          endpoint: config.OPS_S3_ENDPOINT || undefined,
          region: config.OPS_S3_REGION,
          prefix: config.OPS_S3_PREFIX,
          forcePathStyle: config.OPS_S3_FORCE_PATH_STYLE,
          verify: config.OPS_S3_VERIFY,
          stallTimeoutMs: config.OPS_S3_STALL_TIMEOUT_MS,
          keepDays: config.OPS_S3_KEEP_DAYS,
        })
      : undefined,
  };
  const runner = new JobRunner({
    sql: deps.sql,
    nats: deps.nats,
    names: deps.names,
    redact: (text) => redactSecrets(text, [password]),
    onError: (job, err) => deps.onError?.(`job ${job.id} (${job.kind}) failed`, err),
    onUpdate: deps.onUpdate,
    heartbeatMs: config.OPS_JOB_HEARTBEAT_MS,
    abandonAfterMs: config.OPS_JOB_ABANDON_AFTER_MS,
    cleanup: (items) => removeScratch(backups, items),
  });
  return new Ops({
    sql: deps.sql,
    runner,
    backups,
    restore: {
      fence: deps.nats
        ? natsFence(deps.nats, deps.names, {
            leaseMs: config.OPS_FENCE_LEASE_MS,
            answerWaitMs: config.OPS_FENCE_ANSWER_MS,
            replayTimeoutMs: config.OPS_REPLAY_TIMEOUT_MS,
            holder: runner.instance,
          })
        : undefined,
      requiredIngestInstances: config.OPS_FENCE_INGEST_INSTANCES,
      replayMarginMs: config.OPS_REPLAY_MARGIN_MS,
    },
    retention: {
      keepDays: config.BACKUP_KEEP_DAYS,
      keepCount: config.BACKUP_KEEP_COUNT,
      safetyKeepDays: config.BACKUP_SAFETY_KEEP_DAYS,
    },
    jobKeepDays: config.OPS_JOB_KEEP_DAYS,
    thresholds: {
      longQueryMs: config.HEALTH_LONG_QUERY_MS,
      idleInTransactionMs: config.HEALTH_IDLE_IN_TRANSACTION_MS,
      backupMaxAgeHours: config.HEALTH_BACKUP_MAX_AGE_HOURS,
      verifiedMaxAgeHours: config.HEALTH_VERIFIED_MAX_AGE_HOURS,
    },
  });
}

export function scheduleOf(config: OpsConfig): ScheduleConfig {
  return {
    backup: config.OPS_SCHEDULE_BACKUP,
    verify: config.OPS_SCHEDULE_VERIFY,
    maintenance: config.OPS_SCHEDULE_MAINTENANCE,
    partitions: config.OPS_SCHEDULE_PARTITIONS,
    retention: config.OPS_SCHEDULE_RETENTION,
  };
}

type Log = (level: 'info' | 'warn' | 'error', msg: string, extra?: object) => void;

/**
 * The service's background work: fail jobs nobody runs any more and remove their leftovers
 * (then again on every heartbeat), answer NATS requests, run the schedule. Returns the
 * function that stops it all.
 */
export async function startBackground(
  ops: Ops,
  deps: { nats?: NatsConnection; auth?: Auth; names: NatsNames; schedule?: ScheduleConfig; log: Log },
): Promise<{ stop: () => Promise<void>; interrupted: number; next: () => Record<string, string | null> }> {
  const swept = await ops.runner.sweep();
  const interrupted = swept.abandoned.length;
  if (interrupted > 0)
    deps.log('warn', `${interrupted} abandoned job(s) marked failed`, { ids: swept.abandoned });
  if (swept.cleaned > 0) deps.log('warn', `${swept.cleaned} leftover(s) of dead jobs removed`);
  ops.runner.startHeartbeat();
  await ops.catalogue.ensureDir();
  if (deps.nats && !deps.auth) throw new Error('ops requests over NATS need the token checks (auth)');
  const sub =
    deps.nats && deps.auth
      ? serveOpsRequests(deps.nats, deps.names, ops, deps.auth, (msg, err) => deps.log('error', msg, { err }))
      : null;
  const schedule = deps.schedule ? startSchedule(ops, deps.schedule, deps.log) : null;
  return {
    interrupted,
    next: () => schedule?.next() ?? {},
    stop: async () => {
      schedule?.stop();
      sub?.unsubscribe();
      await ops.runner.stop();
    },
  };
}
