import { fileURLToPath } from 'node:url';
import { env } from '@spywatcher/service';
import { Cron } from 'croner';

const RESTORE_TARGET_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]{0,62}\*?$/;

/** A cron expression (5 or 6 fields, UTC) or "off". */
const cron = (description: string, defaultValue: string) =>
  env.custom<string | null>(`${description} (cron, UTC; "off" disables)`, defaultValue, (raw, name) => {
    const value = raw.trim();
    if (value === 'off') return null;
    try {
      new Cron(value, { paused: true, timezone: 'UTC' }).stop();
    } catch (error) {
      throw new Error(`${name} must be a cron expression or "off": ${(error as Error).message}`);
    }
    return value;
  });

/** Environment of the ops service, on top of the common variables. */
export const opsEnv = {
  BACKUP_DIR: env.string(
    'Directory holding backups (<id>.dump) and their manifests (<id>.json)',
    fileURLToPath(new URL('../backups', import.meta.url)),
  ),
  OPS_ADMIN_DATABASE: env.string(
    'Database on the same server used to create and drop scratch/restore databases',
    'postgres',
  ),
  PG_DUMP_PATH: env.string('pg_dump binary (must match the server major version or be newer)', 'pg_dump'),
  PG_RESTORE_PATH: env.string('pg_restore binary', 'pg_restore'),
  BACKUP_COMPRESSION: env.int('zlib level for pg_dump -Fc (0 = none, 9 = smallest)', 6, { min: 0, max: 9 }),
  BACKUP_LOCK_WAIT_TIMEOUT_MS: env.int('How long pg_dump waits for a table lock before failing', 60_000, {
    min: 1,
  }),
  RESTORE_JOBS: env.int('Parallel pg_restore workers for verify and restore', 2, { min: 1, max: 32 }),
  OPS_RESTORE_TARGETS: env.custom<string[]>(
    "Comma-separated databases restores may create or replace besides the service's own (a trailing * matches a prefix, e.g. spywatcher_restore_*); anything else is refused",
    [],
    (raw, name) => {
      const targets = raw
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean);
      for (const t of targets) {
        if (!RESTORE_TARGET_PATTERN.test(t)) {
          throw new Error(
            `${name} must list database names (letters, digits, "_", "-"; a trailing * for a prefix), got ${JSON.stringify(t)}`,
          );
        }
      }
      return targets;
    },
  ),
  BACKUP_KEEP_DAYS: env.int('Retention: delete backups older than this many days', 30, { min: 1 }),
  BACKUP_KEEP_COUNT: env.int('Retention: keep at most this many backups per database (0 = no limit)', 0, {
    min: 0,
  }),
  BACKUP_SAFETY_KEEP_DAYS: env.int(
    'Retention of safety backups (taken by restores before replacing a database), in days',
    14,
    { min: 1 },
  ),
  OPS_JOB_KEEP_DAYS: env.int('Retention: delete finished job records older than this many days', 90, {
    min: 1,
  }),
  OPS_S3_BUCKET: env.string('Bucket for off-site copies; empty disables them', ''),
  OPS_S3_ENDPOINT: env.string('S3-compatible endpoint URL (empty = AWS)', ''),
  OPS_S3_REGION: env.string('S3 region', 'us-east-1'),
  OPS_S3_PREFIX: env.string('Key prefix of off-site copies', 'spywatcher/backups/'),
  OPS_S3_FORCE_PATH_STYLE: env.bool('Path-style S3 URLs (MinIO, Ceph and most S3-compatible servers)', false),
  OPS_S3_VERIFY: env.bool("Read each off-site copy back and compare its sha256 with the backup's", true),
  OPS_S3_KEEP_DAYS: env.int(
    'Off-site retention: delete copies older than this many days (0 = keep forever); independent of local retention',
    90,
    { min: 0 },
  ),
  OPS_S3_STALL_TIMEOUT_MS: env.int('An S3 request silent for this long fails (stalled endpoint)', 30_000, {
    min: 100,
  }),
  OPS_JOB_HEARTBEAT_MS: env.int('How often a running job renews its heartbeat in ops_jobs', 5000, {
    min: 100,
  }),
  OPS_JOB_ABANDON_AFTER_MS: env.int(
    'A running job whose heartbeat is older than this is failed as abandoned by any ops instance',
    60_000,
    { min: 1000 },
  ),
  OPS_FENCE_INGEST_INSTANCES: env.int(
    'Ingest instances that must answer "paused" before a restore replaces the live database (0 = none required)',
    0,
    { min: 0 },
  ),
  OPS_FENCE_LEASE_MS: env.int(
    'Lease of an ingest pause: ingest resumes by itself if ops stops renewing it for this long',
    30_000,
    { min: 1000 },
  ),
  OPS_FENCE_ANSWER_MS: env.int('Longest wait for ingest instances to answer a pause', 15_000, { min: 100 }),
  OPS_REPLAY_MARGIN_MS: env.int(
    "After a restore, events are replayed from this long before the backup's snapshot (publish-to-commit delay)",
    300_000,
    { min: 0 },
  ),
  OPS_REPLAY_TIMEOUT_MS: env.int('Longest a replay from the stream may take', 600_000, { min: 1000 }),
  NATS_PREFIX: env.string(
    'Subject prefix: requests on <prefix>.ops.>, progress on <prefix>.ops.jobs.<id>',
    'spywatcher',
  ),
  OPS_SCHEDULE_BACKUP: cron('When to take a backup', '0 3 * * *'),
  OPS_SCHEDULE_VERIFY: cron('Restore drill: verify the newest backup', '30 4 * * *'),
  OPS_SCHEDULE_MAINTENANCE: cron('VACUUM and ANALYZE what needs it', '0 5 * * 0'),
  OPS_SCHEDULE_PARTITIONS: cron('Partition upkeep: create ahead, drop expired', '15 * * * *'),
  OPS_SCHEDULE_RETENTION: cron('Backup retention', '45 3 * * *'),
  HEALTH_LONG_QUERY_MS: env.int('Health report: queries running longer are findings', 60_000, { min: 1 }),
  HEALTH_IDLE_IN_TRANSACTION_MS: env.int(
    'Health report: sessions idle in a transaction longer are findings',
    60_000,
    { min: 1 },
  ),
  HEALTH_BACKUP_MAX_AGE_HOURS: env.int('Health report: warn when the newest backup is older', 26, { min: 1 }),
  HEALTH_VERIFIED_MAX_AGE_HOURS: env.int(
    'Health report: warn when the newest verified backup is older',
    192,
    { min: 1 },
  ),
  OPS_DISK_PATHS: env.list(
    'Comma-separated directories whose file systems /metrics reports besides BACKUP_DIR (e.g. PGDATA)',
    [],
  ),
};
