/**
 * The health report's rules: each takes what a collector read (health-collectors.ts) and returns
 * the findings it calls for, with nothing read from anywhere else, so each can be tested alone.
 */
import type { IndexBloat, TableBloat } from './bloat.ts';
import type { Finding, HealthThresholds, Severity } from './health.ts';
import type {
  BackupAges,
  BlockingLock,
  ConnectionStats,
  DatabaseFacts,
  DuplicateIndex,
  LongQuery,
  PartitionCoverage,
  ReplicationState,
  UnusedIndexes,
  VacuumStat,
  Wraparound,
} from './health-collectors.ts';

const MIB = 1_048_576;

function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

export function tableBloatFindings(tables: TableBloat[]): Finding[] {
  return tables
    .filter((b) => b.bloatRatio >= 0.4 && b.bloatBytes >= MIB && !b.reusable)
    .map((b) => ({
      check: 'table_bloat',
      severity: b.bloatRatio >= 0.7 && b.bloatBytes >= 100 * MIB ? 'critical' : 'warning',
      subject: `${b.schema}.${b.table}`,
      message: `about ${Math.round(b.bloatRatio * 100)}% of ${b.table}${b.parent ? ` (partition of ${b.parent})` : ''} is empty space (${mib(b.bloatBytes)} of ${mib(b.sizeBytes)})`,
      action: `VACUUM it (POST /v1/maintenance/vacuum {"tables":["${b.schema}.${b.table}"]}) so the space is reused; only VACUUM FULL or pg_repack returns it to the OS`,
    }));
}

/** Space VACUUM has already made reusable: only a rewrite gives it back to the OS. */
export function tableFreeSpaceFindings(tables: TableBloat[]): Finding[] {
  return tables
    .filter((b) => b.bloatRatio >= 0.4 && b.bloatBytes >= 100 * MIB && b.reusable)
    .map((b) => ({
      check: 'table_free_space',
      severity: 'info',
      subject: `${b.schema}.${b.table}`,
      message: `about ${Math.round(b.bloatRatio * 100)}% of ${b.table} is free space that new rows will reuse (${mib(b.bloatBytes)} of ${mib(b.sizeBytes)})`,
      action: 'nothing is needed; to return the space to the OS, VACUUM FULL (locks the table) or pg_repack',
    }));
}

export function indexBloatFindings(indexes: IndexBloat[]): Finding[] {
  return indexes
    .filter((b) => b.bloatRatio >= 0.4 && b.bloatBytes >= MIB)
    .map((b) => ({
      check: 'index_bloat',
      severity: 'warning',
      subject: `${b.schema}.${b.index}`,
      message: `index ${b.index} on ${b.table} is about ${Math.round(b.bloatRatio * 100)}% bloated (${mib(b.bloatBytes)} of ${mib(b.sizeBytes)})`,
      action: 'POST /v1/maintenance/reindex (REINDEX INDEX CONCURRENTLY, no write lock)',
    }));
}

export function unusedIndexFindings(unused: UnusedIndexes): Finding[] {
  const since = unused.statsResetAt
    ? `since statistics were reset at ${unused.statsResetAt}`
    : 'since statistics began (never reset)';
  return unused.indexes.map((u) => ({
    check: 'unused_index',
    severity: u.sizeBytes >= 10 * MIB ? 'warning' : 'info',
    subject: `${u.schema}.${u.index}`,
    message: `index ${u.index} on ${u.table} (${mib(u.sizeBytes)}) has had no scans ${since}`,
    action: `if no rare report needs it, drop it to speed up writes: DROP INDEX CONCURRENTLY ${u.schema}.${u.index} (in a migration)`,
  }));
}

export function duplicateIndexFindings(duplicates: DuplicateIndex[]): Finding[] {
  return duplicates.map((d) => ({
    check: d.kind === 'duplicate' ? 'duplicate_index' : 'redundant_index',
    severity: 'warning',
    subject: `${d.schema}.${d.index}`,
    message:
      d.kind === 'duplicate'
        ? `index ${d.index} on ${d.table} is identical to ${d.coveredBy}`
        : `index ${d.index} on ${d.table} is a leading-column prefix of ${d.coveredBy}, which serves the same lookups`,
    action: `drop ${d.index} in a migration (DROP INDEX CONCURRENTLY)`,
  }));
}

/** Queries running longer than the threshold (the collector selects only those). */
export function longQueryFindings(long: LongQuery[], thresholds: HealthThresholds): Finding[] {
  return long.map((q) => ({
    check: 'long_query',
    severity: q.durationS * 1000 >= thresholds.longQueryMs * 10 ? 'critical' : 'warning',
    subject: `pid ${q.pid}`,
    message: `query running for ${q.durationS.toFixed(1)} s from ${q.application || 'unknown application'}: ${q.query}`,
    action: `find out why it is slow (EXPLAIN); if it must stop: select pg_cancel_backend(${q.pid})`,
  }));
}

export function idleInTransactionFindings(idle: LongQuery[]): Finding[] {
  return idle.map((q) => ({
    check: 'idle_in_transaction',
    severity: 'warning',
    subject: `pid ${q.pid}`,
    message: `session idle in a transaction for ${q.durationS.toFixed(1)} s (${q.application || 'unknown application'}); it holds locks and stops VACUUM from cleaning up`,
    action: `fix the client to commit or roll back promptly; to end it now: select pg_terminate_backend(${q.pid}); consider idle_in_transaction_session_timeout`,
  }));
}

export function blockingLockFindings(blocking: BlockingLock[]): Finding[] {
  return blocking.map((b) => ({
    check: 'blocking_lock',
    severity: b.waitingS >= 60 ? 'critical' : 'warning',
    subject: `pid ${b.blockedPid}`,
    message: `pid ${b.blockedPid} (${b.blockedApplication || 'unknown'}) has waited ${b.waitingS.toFixed(1)} s for a ${b.waitEvent ?? 'lock'} held by pid ${b.blockingPids.join(', ')}: ${b.blockedQuery}`,
    action: `look at what pid ${b.blockingPids[0]} is doing; if it is stuck: select pg_terminate_backend(${b.blockingPids[0]})`,
  }));
}

export function connectionFindings(connections: ConnectionStats): Finding[] {
  const used = connections.total / Math.max(connections.max, 1);
  if (used < 0.75) return [];
  return [
    {
      check: 'connections',
      severity: used >= 0.9 ? 'critical' : 'warning',
      subject: 'max_connections',
      message: `${connections.total} of ${connections.max} connections in use (${Math.round(used * 100)}%)`,
      action: 'put PgBouncer in front (DATABASE_PGBOUNCER=true) or lower DATABASE_POOL_MAX per service',
    },
  ];
}

/** Judged only once enough blocks were read for the ratio to mean something. */
export function cacheHitFindings(db: DatabaseFacts): Finding[] {
  if (db.cacheHitRatio === null || db.blocksTotal < 100_000 || db.cacheHitRatio >= 0.99) return [];
  return [
    {
      check: 'cache_hit_ratio',
      severity: db.cacheHitRatio < 0.9 ? 'critical' : 'warning',
      subject: db.name,
      message: `cache hit ratio is ${(db.cacheHitRatio * 100).toFixed(2)}% (below 99%)`,
      action:
        'raise shared_buffers (see infra/postgres/postgresql.conf) or look for sequential scans of large tables',
    },
  ];
}

export function deadTupleFindings(vacuum: VacuumStat[]): Finding[] {
  return vacuum
    .filter((v) => v.deadTuples >= 10_000 && v.deadRatio >= 0.2)
    .map((v) => ({
      check: 'dead_tuples',
      severity: v.deadRatio >= 0.5 ? 'critical' : 'warning',
      subject: `${v.schema}.${v.table}`,
      message: `${v.deadTuples} dead tuples (${Math.round(v.deadRatio * 100)}%); last vacuum ${v.lastVacuum ?? 'never'}, last autovacuum ${v.lastAutovacuum ?? 'never'}`,
      action: `POST /v1/maintenance/vacuum {"tables":["${v.schema}.${v.table}"]}; if it keeps happening, lower autovacuum_vacuum_scale_factor for the table`,
    }));
}

export function wraparoundFindings(wraparound: Wraparound, database: string): Finding[] {
  if (wraparound.databaseAge < 1_000_000_000 && wraparound.databaseAge < 2 * wraparound.freezeMaxAge)
    return [];
  return [
    {
      check: 'xid_wraparound',
      severity: wraparound.databaseAge >= 1_500_000_000 ? 'critical' : 'warning',
      subject: wraparound.oldestTable ?? database,
      message: `oldest unfrozen transaction id is ${wraparound.databaseAge} transactions old (PostgreSQL stops writes near 2,000,000,000)`,
      action: `VACUUM (FREEZE) ${wraparound.oldestTable ?? 'the oldest tables'}; check nothing (an old transaction, a replication slot) holds the horizon back`,
    },
  ];
}

export function partitionFindings(partitions: PartitionCoverage[]): Finding[] {
  const out: Finding[] = [];
  for (const p of partitions) {
    if (!p.current) {
      out.push({
        check: 'partition_coverage',
        severity: 'critical',
        subject: p.table,
        message: `${p.table} has no partition for the current ${p.period}; writers will create it on demand, but upkeep is not running`,
        action:
          'run partition upkeep (nx run migrator:partitions) and check the ops schedule OPS_SCHEDULE_PARTITIONS',
      });
    } else if (p.ahead < 1) {
      out.push({
        check: 'partition_coverage',
        severity: 'warning',
        subject: p.table,
        message: `${p.table} has no partition for the next ${p.period}`,
        action: 'run partition upkeep (nx run migrator:partitions)',
      });
    }
    if (p.expired.length > 0) {
      out.push({
        check: 'partition_retention',
        severity: 'warning',
        subject: p.table,
        message: `${p.expired.length} partition(s) of ${p.table} are past the ${p.retentionDays}-day retention: ${p.expired.slice(0, 5).join(', ')}`,
        action: 'run partition upkeep (nx run migrator:partitions) to drop them',
      });
    }
  }
  return out;
}

/** Replay lag above which a standby's reads are called stale (warning), and far too stale. */
const REPLICA_LAG_WARNING_MS = 30_000;
const REPLICA_LAG_CRITICAL_MS = 300_000;

export function replicationFindings(r: ReplicationState): Finding[] {
  const lagging = (name: string, lagMs: number): Finding => ({
    check: 'replication_lag',
    severity: lagMs >= REPLICA_LAG_CRITICAL_MS ? 'critical' : 'warning',
    subject: name,
    message: `standby ${name} replays WAL ${(lagMs / 1000).toFixed(1)} s behind its primary; reads there (SEARCH_DATABASE_URL) are that stale`,
    action:
      'look at the standby (disk, CPU, long queries holding replay back: max_standby_streaming_delay); point SEARCH_DATABASE_URL at the primary meanwhile (docs/scale-out.md)',
  });
  const out = r.standbys
    .filter((s) => s.replayLagMs >= REPLICA_LAG_WARNING_MS)
    .map((s) => lagging(s.name, s.replayLagMs));
  if (r.role === 'standby' && r.self.lagMs !== null && r.self.lagMs >= REPLICA_LAG_WARNING_MS)
    out.push(lagging('this server', r.self.lagMs));
  if (r.role === 'standby' && r.self.receiving === false)
    out.push({
      check: 'replication_stream',
      severity: 'critical',
      subject: 'this server',
      message: 'this standby receives no WAL from its primary: its data stops at the last replayed commit',
      action:
        'check the primary and primary_conninfo; if the primary is lost, promote this standby (docs/scale-out.md, failover)',
    });
  return out;
}

export function backupManifestFindings(backups: BackupAges): Finding[] {
  return backups.brokenManifests.map((m) => ({
    check: 'backup_manifest',
    severity: 'warning',
    subject: m.file,
    message: m.error,
    action: `repair the manifest from the dump, or delete both files (DELETE /v1/backups/${m.file.replace(/\.json$/, '')})`,
  }));
}

/** The newest backup's age, its off-site copy and the newest verified one (with a backup catalogue). */
export function backupAgeFindings(
  backups: BackupAges,
  database: string,
  thresholds: HealthThresholds,
): Finding[] {
  const out: Finding[] = [];
  const hours = (s: number | null) => (s === null ? null : s / 3600);
  const lastH = hours(backups.lastSuccessAgeS);
  if (lastH === null || lastH > thresholds.backupMaxAgeHours) {
    out.push({
      check: 'backup_age',
      severity: lastH === null || lastH > 3 * thresholds.backupMaxAgeHours ? 'critical' : 'warning',
      subject: 'backups',
      message:
        lastH === null
          ? `there is no backup of ${database}`
          : `the last backup of ${database} is ${lastH.toFixed(1)} hours old`,
      action: 'POST /v1/backups (or nx run ops:backup) and check OPS_SCHEDULE_BACKUP',
    });
  }
  if (backups.lastOffsiteError) {
    out.push({
      check: 'backup_offsite',
      severity: 'warning',
      subject: backups.lastSuccessId ?? 'backups',
      message: `the newest backup has no off-site copy: ${backups.lastOffsiteError}`,
      action: 'check OPS_S3_* settings and credentials, then take a new backup',
    });
  }
  const verH = hours(backups.lastVerifiedAgeS);
  if (verH === null || verH > thresholds.verifiedMaxAgeHours) {
    out.push({
      check: 'backup_verified_age',
      severity: 'warning',
      subject: 'backups',
      message:
        verH === null
          ? `no backup of ${database} has been verified by a restore`
          : `the last verified backup of ${database} is ${verH.toFixed(1)} hours old`,
      action: 'POST /v1/backups/{id}/verify for the newest backup and check OPS_SCHEDULE_VERIFY',
    });
  }
  return out;
}

const RANK = { critical: 0, warning: 1, info: 2 } as const;

/** Worst first, then by check name (the sort is stable: a rule's own order stays). */
export function sortFindings(findings: Finding[]): Finding[] {
  return [...findings].sort((a, b) => RANK[a.severity] - RANK[b.severity] || a.check.localeCompare(b.check));
}

/** The report's status: its worst finding's severity, or ok with none above info. */
export function healthStatus(findings: Finding[]): 'ok' | Severity {
  if (findings.some((f) => f.severity === 'critical')) return 'critical';
  if (findings.some((f) => f.severity === 'warning')) return 'warning';
  return 'ok';
}
