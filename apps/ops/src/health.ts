import type { Sql } from '@spywatcher/db';
import { estimateIndexBloat, estimateTableBloat, type IndexBloat, type TableBloat } from './bloat.ts';
import type { BackupCatalogue } from './catalogue.ts';
import {
  type BackupAges,
  type BlockingLock,
  backupAges,
  blockingLocks,
  type ConnectionStats,
  connectionStats,
  type DatabaseFacts,
  type DuplicateIndex,
  databaseFacts,
  duplicateIndexes,
  type LongQuery,
  type PartitionCoverage,
  partitionCoverage,
  type ReplicationState,
  replicationState,
  type Sessions,
  type SizeSections,
  sessions,
  sizesWithoutWaiting,
  type UnusedIndexes,
  unusedIndexes,
  type VacuumStat,
  vacuumStats,
  type Wraparound,
  wraparoundAge,
} from './health-collectors.ts';
import {
  backupAgeFindings,
  backupManifestFindings,
  blockingLockFindings,
  cacheHitFindings,
  connectionFindings,
  deadTupleFindings,
  duplicateIndexFindings,
  healthStatus,
  idleInTransactionFindings,
  indexBloatFindings,
  longQueryFindings,
  partitionFindings,
  replicationFindings,
  sortFindings,
  tableBloatFindings,
  tableFreeSpaceFindings,
  unusedIndexFindings,
  wraparoundFindings,
} from './health-rules.ts';

export type Severity = 'info' | 'warning' | 'critical';

export interface Finding {
  check: string;
  severity: Severity;
  subject: string;
  message: string;
  action: string;
}

export interface HealthThresholds {
  longQueryMs: number;
  idleInTransactionMs: number;
  backupMaxAgeHours: number;
  verifiedMaxAgeHours: number;
}

export const DEFAULT_THRESHOLDS: HealthThresholds = {
  longQueryMs: 60_000,
  idleInTransactionMs: 60_000,
  backupMaxAgeHours: 26,
  verifiedMaxAgeHours: 8 * 24,
};

/** Everything the collectors read, before any rule judges it. */
export interface HealthData {
  db: DatabaseFacts;
  sizes: SizeSections;
  tableBloat: TableBloat[];
  indexBloat: IndexBloat[];
  unused: UnusedIndexes;
  duplicates: DuplicateIndex[];
  activity: Sessions;
  blocking: BlockingLock[];
  connections: ConnectionStats;
  vacuum: VacuumStat[];
  wraparound: Wraparound;
  partitions: PartitionCoverage[];
  backups: BackupAges;
  replication: ReplicationState;
}

export interface HealthReport {
  generatedAt: string;
  durationMs: number;
  database: string;
  status: 'ok' | Severity;
  /** Worst first. */
  findings: Finding[];
  sizes: Omit<SizeSections, 'approximate'> & {
    databaseBytes: number;
    /** True when a lock held elsewhere made the report read sizes from pg_class (last VACUUM/ANALYZE). */
    approximate: boolean;
  };
  /** The 20 worst of each. */
  bloat: { tables: Omit<TableBloat, 'oid' | 'deadTuples' | 'reusable'>[]; indexes: IndexBloat[] };
  unusedIndexes: UnusedIndexes;
  duplicateIndexes: DuplicateIndex[];
  longQueries: LongQuery[];
  idleInTransaction: Sessions['idle'];
  blockingLocks: BlockingLock[];
  connections: ConnectionStats;
  cacheHitRatio: number | null;
  /** The 20 tables with the most dead tuples. */
  vacuum: VacuumStat[];
  wraparound: Wraparound;
  partitions: PartitionCoverage[];
  backups: BackupAges;
  replication: ReplicationState;
}

/** Awaits an object of promises at once, into the object of their values. */
async function allOf<T extends object>(parts: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const entries = await Promise.all(Object.entries(parts).map(async ([k, p]) => [k, await p] as const));
  return Object.fromEntries(entries) as T;
}

/** Reads every section at once, each collector on its own. */
function collect(
  sql: Sql,
  catalogue: BackupCatalogue | null,
  thresholds: HealthThresholds,
): Promise<HealthData> {
  return allOf<HealthData>({
    db: databaseFacts(sql),
    sizes: sizesWithoutWaiting(sql),
    tableBloat: estimateTableBloat(sql),
    indexBloat: estimateIndexBloat(sql),
    unused: unusedIndexes(sql),
    duplicates: duplicateIndexes(sql),
    activity: sessions(sql, thresholds),
    blocking: blockingLocks(sql),
    connections: connectionStats(sql),
    vacuum: vacuumStats(sql),
    wraparound: wraparoundAge(sql),
    partitions: partitionCoverage(sql),
    backups: backupAges(catalogue, sql),
    replication: replicationState(sql),
  });
}

/** Every rule over the data, worst first; the backup age rules only with a backup catalogue. */
export function healthFindings(
  d: HealthData,
  thresholds: HealthThresholds,
  withCatalogue: boolean,
): Finding[] {
  return sortFindings([
    ...tableBloatFindings(d.tableBloat),
    ...tableFreeSpaceFindings(d.tableBloat),
    ...indexBloatFindings(d.indexBloat),
    ...unusedIndexFindings(d.unused),
    ...duplicateIndexFindings(d.duplicates),
    ...longQueryFindings(d.activity.long, thresholds),
    ...idleInTransactionFindings(d.activity.idle),
    ...blockingLockFindings(d.blocking),
    ...connectionFindings(d.connections),
    ...cacheHitFindings(d.db),
    ...deadTupleFindings(d.vacuum),
    ...wraparoundFindings(d.wraparound, d.db.name),
    ...partitionFindings(d.partitions),
    ...replicationFindings(d.replication),
    ...backupManifestFindings(d.backups),
    ...(withCatalogue ? backupAgeFindings(d.backups, d.db.name, thresholds) : []),
  ]);
}

const tableBloatShown = ({ oid: _oid, deadTuples: _d, reusable: _r, ...rest }: TableBloat) => rest;

/** One database health report: every section plus the findings, worst first. */
export async function healthReport(
  sql: Sql,
  catalogue: BackupCatalogue | null,
  thresholds: HealthThresholds = DEFAULT_THRESHOLDS,
): Promise<HealthReport> {
  const started = performance.now();
  const d = await collect(sql, catalogue, thresholds);
  const findings = healthFindings(d, thresholds, catalogue !== null);
  return {
    generatedAt: new Date().toISOString(),
    durationMs: Math.round(performance.now() - started),
    database: d.db.name,
    status: healthStatus(findings),
    findings,
    sizes: {
      databaseBytes: d.db.sizeBytes,
      tables: d.sizes.tables,
      partitions: d.sizes.partitions,
      indexes: d.sizes.indexes,
      approximate: d.sizes.approximate,
    },
    bloat: {
      tables: d.tableBloat.slice(0, 20).map(tableBloatShown),
      indexes: d.indexBloat.slice(0, 20),
    },
    unusedIndexes: d.unused,
    duplicateIndexes: d.duplicates,
    longQueries: d.activity.long,
    idleInTransaction: d.activity.idle,
    blockingLocks: d.blocking,
    connections: d.connections,
    cacheHitRatio: d.db.cacheHitRatio,
    vacuum: d.vacuum.slice(0, 20),
    wraparound: d.wraparound,
    partitions: d.partitions,
    backups: d.backups,
    replication: d.replication,
  };
}
