import {
  importedPartitions,
  listPartitions,
  partitionPolicies,
  type Queryable,
  retentionDecisions,
  type Sql,
  standbyLags,
  standbyStatus,
} from '@spywatcher/db';
import { estimateIndexBloat, estimateTableBloat, type IndexBloat, type TableBloat } from './bloat.ts';
import type { BackupCatalogue } from './catalogue.ts';

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

const num = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));
const MIB = 1_048_576;

/** One database health report: every section plus the findings, worst first. */
export async function healthReport(
  sql: Sql,
  catalogue: BackupCatalogue | null,
  thresholds: HealthThresholds = DEFAULT_THRESHOLDS,
) {
  const started = performance.now();
  const findings: Finding[] = [];
  const add = (f: Finding) => findings.push(f);
  const [
    db,
    sizeSections,
    tableBloat,
    indexBloat,
    unused,
    duplicates,
    activity,
    blocking,
    connections,
    vacuum,
    wraparound,
    partitions,
    backups,
    replication,
  ] = await Promise.all([
    databaseFacts(sql),
    sizesWithoutWaiting(sql),
    estimateTableBloat(sql),
    estimateIndexBloat(sql),
    unusedIndexes(sql),
    duplicateIndexes(sql),
    sessions(sql, thresholds),
    blockingLocks(sql),
    connectionStats(sql),
    vacuumStats(sql),
    wraparoundAge(sql),
    partitionCoverage(sql),
    backupAges(catalogue, sql),
    replicationState(sql),
  ]);
  const { tables: sizes, partitions: partitionSizes, indexes: indexSizes } = sizeSections;

  // sizes and bloat
  for (const b of tableBloat) {
    if (b.bloatRatio >= 0.4 && b.bloatBytes >= MIB && !b.reusable) {
      add({
        check: 'table_bloat',
        severity: b.bloatRatio >= 0.7 && b.bloatBytes >= 100 * MIB ? 'critical' : 'warning',
        subject: `${b.schema}.${b.table}`,
        message: `about ${Math.round(b.bloatRatio * 100)}% of ${b.table}${b.parent ? ` (partition of ${b.parent})` : ''} is empty space (${mib(b.bloatBytes)} of ${mib(b.sizeBytes)})`,
        action: `VACUUM it (POST /v1/maintenance/vacuum {"tables":["${b.schema}.${b.table}"]}) so the space is reused; only VACUUM FULL or pg_repack returns it to the OS`,
      });
    }
  }
  for (const b of tableBloat) {
    if (b.bloatRatio >= 0.4 && b.bloatBytes >= 100 * MIB && b.reusable) {
      // VACUUM has already made this space reusable; only a rewrite gives it back to the OS
      add({
        check: 'table_free_space',
        severity: 'info',
        subject: `${b.schema}.${b.table}`,
        message: `about ${Math.round(b.bloatRatio * 100)}% of ${b.table} is free space that new rows will reuse (${mib(b.bloatBytes)} of ${mib(b.sizeBytes)})`,
        action:
          'nothing is needed; to return the space to the OS, VACUUM FULL (locks the table) or pg_repack',
      });
    }
  }
  for (const b of indexBloat) {
    if (b.bloatRatio >= 0.4 && b.bloatBytes >= MIB) {
      add({
        check: 'index_bloat',
        severity: 'warning',
        subject: `${b.schema}.${b.index}`,
        message: `index ${b.index} on ${b.table} is about ${Math.round(b.bloatRatio * 100)}% bloated (${mib(b.bloatBytes)} of ${mib(b.sizeBytes)})`,
        action: 'POST /v1/maintenance/reindex (REINDEX INDEX CONCURRENTLY, no write lock)',
      });
    }
  }
  const since = unused.statsResetAt
    ? `since statistics were reset at ${unused.statsResetAt}`
    : 'since statistics began (never reset)';
  for (const u of unused.indexes) {
    add({
      check: 'unused_index',
      severity: u.sizeBytes >= 10 * MIB ? 'warning' : 'info',
      subject: `${u.schema}.${u.index}`,
      message: `index ${u.index} on ${u.table} (${mib(u.sizeBytes)}) has had no scans ${since}`,
      action: `if no rare report needs it, drop it to speed up writes: DROP INDEX CONCURRENTLY ${u.schema}.${u.index} (in a migration)`,
    });
  }
  for (const d of duplicates) {
    add({
      check: d.kind === 'duplicate' ? 'duplicate_index' : 'redundant_index',
      severity: 'warning',
      subject: `${d.schema}.${d.index}`,
      message:
        d.kind === 'duplicate'
          ? `index ${d.index} on ${d.table} is identical to ${d.coveredBy}`
          : `index ${d.index} on ${d.table} is a leading-column prefix of ${d.coveredBy}, which serves the same lookups`,
      action: `drop ${d.index} in a migration (DROP INDEX CONCURRENTLY)`,
    });
  }
  for (const q of activity.long) {
    add({
      check: 'long_query',
      severity: q.durationS * 1000 >= thresholds.longQueryMs * 10 ? 'critical' : 'warning',
      subject: `pid ${q.pid}`,
      message: `query running for ${q.durationS.toFixed(1)} s from ${q.application || 'unknown application'}: ${q.query}`,
      action: `find out why it is slow (EXPLAIN); if it must stop: select pg_cancel_backend(${q.pid})`,
    });
  }
  for (const q of activity.idle) {
    add({
      check: 'idle_in_transaction',
      severity: 'warning',
      subject: `pid ${q.pid}`,
      message: `session idle in a transaction for ${q.durationS.toFixed(1)} s (${q.application || 'unknown application'}); it holds locks and stops VACUUM from cleaning up`,
      action: `fix the client to commit or roll back promptly; to end it now: select pg_terminate_backend(${q.pid}); consider idle_in_transaction_session_timeout`,
    });
  }
  for (const b of blocking) {
    add({
      check: 'blocking_lock',
      severity: b.waitingS >= 60 ? 'critical' : 'warning',
      subject: `pid ${b.blockedPid}`,
      message: `pid ${b.blockedPid} (${b.blockedApplication || 'unknown'}) has waited ${b.waitingS.toFixed(1)} s for a ${b.waitEvent ?? 'lock'} held by pid ${b.blockingPids.join(', ')}: ${b.blockedQuery}`,
      action: `look at what pid ${b.blockingPids[0]} is doing; if it is stuck: select pg_terminate_backend(${b.blockingPids[0]})`,
    });
  }
  const used = connections.total / Math.max(connections.max, 1);
  if (used >= 0.75) {
    add({
      check: 'connections',
      severity: used >= 0.9 ? 'critical' : 'warning',
      subject: 'max_connections',
      message: `${connections.total} of ${connections.max} connections in use (${Math.round(used * 100)}%)`,
      action: 'put PgBouncer in front (DATABASE_PGBOUNCER=true) or lower DATABASE_POOL_MAX per service',
    });
  }
  if (db.cacheHitRatio !== null && db.blocksTotal >= 100_000 && db.cacheHitRatio < 0.99) {
    add({
      check: 'cache_hit_ratio',
      severity: db.cacheHitRatio < 0.9 ? 'critical' : 'warning',
      subject: db.name,
      message: `cache hit ratio is ${(db.cacheHitRatio * 100).toFixed(2)}% (below 99%)`,
      action:
        'raise shared_buffers (see infra/postgres/postgresql.conf) or look for sequential scans of large tables',
    });
  }
  for (const v of vacuum) {
    if (v.deadTuples >= 10_000 && v.deadRatio >= 0.2) {
      add({
        check: 'dead_tuples',
        severity: v.deadRatio >= 0.5 ? 'critical' : 'warning',
        subject: `${v.schema}.${v.table}`,
        message: `${v.deadTuples} dead tuples (${Math.round(v.deadRatio * 100)}%); last vacuum ${v.lastVacuum ?? 'never'}, last autovacuum ${v.lastAutovacuum ?? 'never'}`,
        action: `POST /v1/maintenance/vacuum {"tables":["${v.schema}.${v.table}"]}; if it keeps happening, lower autovacuum_vacuum_scale_factor for the table`,
      });
    }
  }
  if (wraparound.databaseAge >= 1_000_000_000 || wraparound.databaseAge >= 2 * wraparound.freezeMaxAge) {
    add({
      check: 'xid_wraparound',
      severity: wraparound.databaseAge >= 1_500_000_000 ? 'critical' : 'warning',
      subject: wraparound.oldestTable ?? db.name,
      message: `oldest unfrozen transaction id is ${wraparound.databaseAge} transactions old (PostgreSQL stops writes near 2,000,000,000)`,
      action: `VACUUM (FREEZE) ${wraparound.oldestTable ?? 'the oldest tables'}; check nothing (an old transaction, a replication slot) holds the horizon back`,
    });
  }
  for (const p of partitions) {
    if (!p.current) {
      add({
        check: 'partition_coverage',
        severity: 'critical',
        subject: p.table,
        message: `${p.table} has no partition for the current ${p.period}; writers will create it on demand, but upkeep is not running`,
        action:
          'run partition upkeep (nx run migrator:partitions) and check the ops schedule OPS_SCHEDULE_PARTITIONS',
      });
    } else if (p.ahead < 1) {
      add({
        check: 'partition_coverage',
        severity: 'warning',
        subject: p.table,
        message: `${p.table} has no partition for the next ${p.period}`,
        action: 'run partition upkeep (nx run migrator:partitions)',
      });
    }
    if (p.expired.length > 0) {
      add({
        check: 'partition_retention',
        severity: 'warning',
        subject: p.table,
        message: `${p.expired.length} partition(s) of ${p.table} are past the ${p.retentionDays}-day retention: ${p.expired.slice(0, 5).join(', ')}`,
        action: 'run partition upkeep (nx run migrator:partitions) to drop them',
      });
    }
  }
  for (const finding of replicationFindings(replication)) add(finding);
  for (const m of backups.brokenManifests) {
    add({
      check: 'backup_manifest',
      severity: 'warning',
      subject: m.file,
      message: m.error,
      action: `repair the manifest from the dump, or delete both files (DELETE /v1/backups/${m.file.replace(/\.json$/, '')})`,
    });
  }
  if (catalogue) {
    const hours = (s: number | null) => (s === null ? null : s / 3600);
    const lastH = hours(backups.lastSuccessAgeS);
    if (lastH === null || lastH > thresholds.backupMaxAgeHours) {
      add({
        check: 'backup_age',
        severity: lastH === null || lastH > 3 * thresholds.backupMaxAgeHours ? 'critical' : 'warning',
        subject: 'backups',
        message:
          lastH === null
            ? `there is no backup of ${db.name}`
            : `the last backup of ${db.name} is ${lastH.toFixed(1)} hours old`,
        action: 'POST /v1/backups (or nx run ops:backup) and check OPS_SCHEDULE_BACKUP',
      });
    }
    if (backups.lastOffsiteError) {
      add({
        check: 'backup_offsite',
        severity: 'warning',
        subject: backups.lastSuccessId ?? 'backups',
        message: `the newest backup has no off-site copy: ${backups.lastOffsiteError}`,
        action: 'check OPS_S3_* settings and credentials, then take a new backup',
      });
    }
    const verH = hours(backups.lastVerifiedAgeS);
    if (verH === null || verH > thresholds.verifiedMaxAgeHours) {
      add({
        check: 'backup_verified_age',
        severity: 'warning',
        subject: 'backups',
        message:
          verH === null
            ? `no backup of ${db.name} has been verified by a restore`
            : `the last verified backup of ${db.name} is ${verH.toFixed(1)} hours old`,
        action: 'POST /v1/backups/{id}/verify for the newest backup and check OPS_SCHEDULE_VERIFY',
      });
    }
  }

  const rank = { critical: 0, warning: 1, info: 2 } as const;
  findings.sort((a, b) => rank[a.severity] - rank[b.severity] || a.check.localeCompare(b.check));
  const status: 'ok' | Severity = findings.some((f) => f.severity === 'critical')
    ? 'critical'
    : findings.some((f) => f.severity === 'warning')
      ? 'warning'
      : 'ok';
  return {
    generatedAt: new Date().toISOString(),
    durationMs: Math.round(performance.now() - started),
    database: db.name,
    status,
    findings,
    sizes: {
      databaseBytes: db.sizeBytes,
      tables: sizes,
      partitions: partitionSizes,
      indexes: indexSizes,
      /** True when a lock held elsewhere made the report read sizes from pg_class (last VACUUM/ANALYZE). */
      approximate: sizeSections.approximate,
    },
    bloat: {
      tables: tableBloat.slice(0, 20).map(stripOid),
      indexes: indexBloat.slice(0, 20) as IndexBloat[],
    },
    unusedIndexes: unused,
    duplicateIndexes: duplicates,
    longQueries: activity.long,
    idleInTransaction: activity.idle,
    blockingLocks: blocking,
    connections,
    cacheHitRatio: db.cacheHitRatio,
    vacuum: vacuum.slice(0, 20),
    wraparound,
    partitions,
    backups,
    replication,
  };
}

export type HealthReport = Awaited<ReturnType<typeof healthReport>>;

/** Replay lag above which a standby's reads are called stale (warning), and far too stale. */
const REPLICA_LAG_WARNING_MS = 30_000;
const REPLICA_LAG_CRITICAL_MS = 300_000;

/**
 * Streaming replication as this server sees it: on a primary, its standbys and their replay lag;
 * on a standby, its own lag and whether WAL still arrives.
 */
async function replicationState(sql: Sql) {
  const [self, standbys] = await Promise.all([standbyStatus(sql), standbyLags(sql)]);
  return { role: self.standby ? ('standby' as const) : ('primary' as const), self, standbys };
}

function replicationFindings(r: Awaited<ReturnType<typeof replicationState>>): Finding[] {
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

function stripOid(b: TableBloat) {
  const { oid: _oid, deadTuples: _d, reusable: _r, ...rest } = b;
  return rest;
}

function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

async function databaseFacts(sql: Sql) {
  const [r] = await sql<{ name: string; size: string; hit: string; read: string }[]>`
    select current_database() as name, pg_database_size(current_database()) as size,
           blks_hit as hit, blks_read as read
    from pg_stat_database where datname = current_database()
  `;
  const hit = num(r!.hit);
  const total = hit + num(r!.read);
  return {
    name: r!.name,
    sizeBytes: num(r!.size),
    blocksTotal: total,
    cacheHitRatio: total > 0 ? hit / total : null,
  };
}

/**
 * Table, partition and index sizes. The size functions take a lock on each relation, so they
 * run with a short lock_timeout: when something holds an exclusive lock the report reads the
 * sizes pg_class recorded at the last VACUUM/ANALYZE instead of waiting.
 */
async function sizesWithoutWaiting(sql: Sql) {
  try {
    return await sql.begin(async (tx) => {
      await tx`set local lock_timeout = '200ms'`;
      return { ...(await sizeQueries(tx, true)), approximate: false };
    });
  } catch (error) {
    if ((error as { code?: string }).code !== '55P03') throw error;
    return { ...(await sizeQueries(sql, false)), approximate: true };
  }
}

async function sizeQueries(sql: Queryable, exact: boolean) {
  // relation size from pg_class alone: heap + toast + indexes, as of the last VACUUM/ANALYZE;
  // the expressions are built from constants only (column references of the queries below)
  const pages = (where: string) =>
    `(select coalesce(sum(x.relpages), 0)::bigint * current_setting('block_size')::int from pg_class x where ${where})`;
  const indexesOf = (rel: string) => `x.oid in (select indexrelid from pg_index where indrelid = ${rel})`;
  const size = exact
    ? {
        total: (rel: string) => `pg_total_relation_size(${rel})`,
        heap: (rel: string) => `pg_table_size(${rel})`,
        indexes: (rel: string) => `pg_indexes_size(${rel})`,
        one: (rel: string) => `pg_relation_size(${rel})`,
      }
    : {
        total: (rel: string) =>
          pages(
            `x.oid = ${rel} or x.oid = (select reltoastrelid from pg_class where oid = ${rel}) or ${indexesOf(rel)}`,
          ),
        heap: (rel: string) => pages(`x.oid = ${rel}`),
        indexes: (rel: string) => pages(indexesOf(rel)),
        one: (rel: string) => pages(`x.oid = ${rel}`),
      };
  const expr = (text: string) => sql.unsafe(text);
  const [tables, partitions, indexRows] = await Promise.all([
    // a plain table is its own only member; a partitioned one is the tree below it (pg_inherits,
    // catalog only: pg_partition_tree locks and returns nothing for a plain table)
    sql<
      {
        schema: string;
        table: string;
        partitioned: boolean;
        partitions: number;
        total: string;
        heap: string;
        indexes: string;
      }[]
    >`
      with recursive tree as (
        select c.oid as root, c.oid as relid, 0 as level
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p', 'm') and not c.relispartition
          and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'
        union all
        select t.root, i.inhrelid, t.level + 1 from tree t join pg_inherits i on i.inhparent = t.relid
      ), sized as (
        select t.root, t.level, ${expr(size.total('t.relid'))} as total, ${expr(size.heap('t.relid'))} as heap,
               ${expr(size.indexes('t.relid'))} as indexes
        from tree t join pg_class c on c.oid = t.relid where c.relkind in ('r', 'm')
      )
      select n.nspname as schema, c.relname as table, c.relkind = 'p' as partitioned,
             (select count(*)::int from tree t where t.root = c.oid and t.level > 0) as partitions,
             coalesce(sum(s.total), 0) as total, coalesce(sum(s.heap), 0) as heap, coalesce(sum(s.indexes), 0) as indexes
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      left join sized s on s.root = c.oid
      where c.oid in (select root from tree)
      group by c.oid, n.nspname, c.relname, c.relkind
      order by 5 desc
      limit 50
    `,
    sql<{ parent: string; name: string; bytes: string }[]>`
      select p.relname as parent, c.relname as name, ${expr(size.total('c.oid'))} as bytes
      from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
      where c.relkind = 'r' order by 3 desc limit 20
    `,
    sql<{ index: string; table: string; bytes: string }[]>`
      select c.relname as index, t.relname as table,
             ${expr(size.one('c.oid'))} as bytes
      from pg_index i join pg_class c on c.oid = i.indexrelid join pg_class t on t.oid = i.indrelid
      join pg_namespace n on n.oid = c.relnamespace
      where c.relkind = 'i' and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'
      order by 3 desc limit 20
    `,
  ]);
  return {
    tables: tables.map((r) => ({
      schema: r.schema,
      table: r.table,
      partitioned: r.partitioned,
      partitions: r.partitions,
      totalBytes: num(r.total),
      tableBytes: num(r.heap),
      indexBytes: num(r.indexes),
    })),
    partitions: partitions.map((p) => ({ parent: p.parent, name: p.name, bytes: num(p.bytes) })),
    indexes: indexRows.map((i) => ({ index: i.index, table: i.table, bytes: num(i.bytes) })),
  };
}

/**
 * Indexes without scans. Partition indexes are summed into their partitioned parent index, so
 * one unused index on the event log is one finding, not one per partition. Never reported:
 * indexes behind primary keys, unique and exclusion constraints (they enforce rules), and
 * indexes whose comment starts with "used by" — a documented query path that may go days
 * without a scan (the message search GIN indexes, migration 0120).
 */
async function unusedIndexes(sql: Sql) {
  const [reset] = await sql<{ reset: Date | null }[]>`
    select stats_reset as reset from pg_stat_database where datname = current_database()
  `;
  const rows = await sql<{ schema: string; index: string; table: string; size: string }[]>`
    with leaf as (
      select s.indexrelid, s.idx_scan,
             coalesce((select inhparent from pg_inherits where inhrelid = s.indexrelid limit 1), s.indexrelid) as root
      from pg_stat_user_indexes s
    ), roots as (
      select root, sum(idx_scan) as scans, sum(pg_relation_size(indexrelid)) as size from leaf group by root
    )
    select n.nspname as schema, ic.relname as index, tc.relname as table, r.size
    from roots r
    join pg_index i on i.indexrelid = r.root
    join pg_class ic on ic.oid = i.indexrelid
    join pg_class tc on tc.oid = i.indrelid
    join pg_namespace n on n.oid = ic.relnamespace
    where r.scans = 0 and not i.indisprimary and not i.indisunique and not i.indisexclusion
      and coalesce(obj_description(i.indexrelid, 'pg_class'), '') !~* '^used by'
    order by r.size desc, 2
  `;
  return {
    statsResetAt: reset?.reset?.toISOString() ?? null,
    indexes: rows.map((r) => ({ schema: r.schema, index: r.index, table: r.table, sizeBytes: num(r.size) })),
  };
}

/** Identical indexes, and B-tree indexes whose columns are a leading prefix of another's. */
async function duplicateIndexes(sql: Sql) {
  const rows = await sql<
    { schema: string; index: string; table: string; covered_by: string; kind: 'duplicate' | 'redundant' }[]
  >`
    select n.nspname as schema, ac.relname as index, tc.relname as table, bc.relname as covered_by,
           case when a.indkey::text = b.indkey::text then 'duplicate' else 'redundant' end as kind
    from pg_index a
    join pg_index b on b.indrelid = a.indrelid and b.indexrelid <> a.indexrelid
    join pg_class ac on ac.oid = a.indexrelid
    join pg_class bc on bc.oid = b.indexrelid
    join pg_class tc on tc.oid = a.indrelid
    join pg_namespace n on n.oid = ac.relnamespace
    join pg_am am on am.oid = ac.relam
    where ac.relam = bc.relam
      and not tc.relispartition
      and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'
      and a.indpred is null and b.indpred is null and a.indexprs is null and b.indexprs is null
      and not a.indisprimary and not a.indisunique and not a.indisexclusion
      and (
        (a.indkey::text = b.indkey::text and a.indclass::text = b.indclass::text
          and (b.indisprimary or b.indisunique or a.indexrelid > b.indexrelid))
        or (am.amname = 'btree' and b.indkey::text like a.indkey::text || ' %'
            and b.indclass::text like a.indclass::text || ' %')
      )
    order by 1, 2
  `;
  return rows.map((r) => ({
    schema: r.schema,
    index: r.index,
    table: r.table,
    coveredBy: r.covered_by,
    kind: r.kind,
  }));
}

async function sessions(sql: Sql, t: HealthThresholds) {
  const rows = await sql<
    {
      pid: number;
      application: string;
      user: string;
      state: string;
      seconds: number;
      idle_seconds: number;
      query: string;
    }[]
  >`
    select pid, application_name as application, usename as user, state,
           extract(epoch from now() - query_start)::float8 as seconds,
           extract(epoch from now() - state_change)::float8 as idle_seconds,
           left(query, 300) as query
    from pg_stat_activity
    where backend_type = 'client backend' and pid <> pg_backend_pid()
      and ((state = 'active' and now() - query_start > ${t.longQueryMs} * interval '1 millisecond')
        or (state like 'idle in transaction%' and now() - state_change > ${t.idleInTransactionMs} * interval '1 millisecond'))
    order by seconds desc
  `;
  return {
    long: rows
      .filter((r) => r.state === 'active')
      .map((r) => ({
        pid: r.pid,
        application: r.application,
        user: r.user,
        durationS: r.seconds,
        query: r.query,
      })),
    idle: rows
      .filter((r) => r.state !== 'active')
      .map((r) => ({
        pid: r.pid,
        application: r.application,
        user: r.user,
        durationS: r.idle_seconds,
        state: r.state,
        query: r.query,
      })),
  };
}

async function blockingLocks(sql: Sql) {
  const rows = await sql<
    {
      pid: number;
      blockers: number[];
      application: string;
      wait_event: string | null;
      seconds: number;
      query: string;
    }[]
  >`
    select pid, pg_blocking_pids(pid) as blockers, application_name as application,
           wait_event_type || ':' || wait_event as wait_event,
           extract(epoch from now() - coalesce(state_change, query_start))::float8 as seconds,
           left(query, 300) as query
    from pg_stat_activity
    where wait_event_type = 'Lock' and cardinality(pg_blocking_pids(pid)) > 0
    order by seconds desc
  `;
  return rows.map((r) => ({
    blockedPid: r.pid,
    blockingPids: r.blockers,
    blockedApplication: r.application,
    waitEvent: r.wait_event,
    waitingS: r.seconds,
    blockedQuery: r.query,
  }));
}

async function connectionStats(sql: Sql) {
  const rows = await sql<{ state: string; application: string; n: number }[]>`
    select coalesce(state, 'unknown') as state, application_name as application, count(*)::int as n
    from pg_stat_activity where backend_type = 'client backend'
    group by 1, 2
  `;
  const [{ max } = { max: 100 }] = await sql<
    { max: number }[]
  >`select current_setting('max_connections')::int as max`;
  const byState: Record<string, number> = {};
  const byApplication: Record<string, number> = {};
  let total = 0;
  for (const r of rows) {
    byState[r.state] = (byState[r.state] ?? 0) + r.n;
    const app = r.application || '(none)';
    byApplication[app] = (byApplication[app] ?? 0) + r.n;
    total += r.n;
  }
  return { max, total, byState, byApplication };
}

async function vacuumStats(sql: Sql) {
  const rows = await sql<
    {
      schema: string;
      table: string;
      live: string;
      dead: string;
      last_vacuum: Date | null;
      last_autovacuum: Date | null;
      last_analyze: Date | null;
      last_autoanalyze: Date | null;
    }[]
  >`
    select schemaname as schema, relname as table, n_live_tup as live, n_dead_tup as dead,
           last_vacuum, last_autovacuum, last_analyze, last_autoanalyze
    from pg_stat_user_tables
    order by n_dead_tup desc, relname
    limit 200
  `;
  return rows.map((r) => {
    const live = num(r.live);
    const dead = num(r.dead);
    return {
      schema: r.schema,
      table: r.table,
      liveTuples: live,
      deadTuples: dead,
      deadRatio: dead / Math.max(live + dead, 1),
      lastVacuum: r.last_vacuum?.toISOString() ?? null,
      lastAutovacuum: r.last_autovacuum?.toISOString() ?? null,
      lastAnalyze: r.last_analyze?.toISOString() ?? null,
      lastAutoanalyze: r.last_autoanalyze?.toISOString() ?? null,
    };
  });
}

async function wraparoundAge(sql: Sql) {
  const [d] = await sql<{ age: number; freeze: number }[]>`
    select age(datfrozenxid) as age, current_setting('autovacuum_freeze_max_age')::int as freeze
    from pg_database where datname = current_database()
  `;
  const [t] = await sql<{ name: string; age: number }[]>`
    select n.nspname || '.' || c.relname as name, age(c.relfrozenxid) as age
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'm', 't') and c.relfrozenxid <> '0'
    order by 2 desc limit 1
  `;
  return {
    databaseAge: num(d?.age),
    freezeMaxAge: num(d?.freeze),
    oldestTable: t?.name ?? null,
    oldestTableAge: t ? num(t.age) : null,
  };
}

/** For each event table: a partition for now, how many periods ahead exist, and which are expired. */
async function partitionCoverage(sql: Sql) {
  const [exists] = await sql<{ t: string | null }[]>`select to_regclass('event_partitioning')::text as t`;
  if (!exists?.t) return [];
  const [policies, parts, imported] = await Promise.all([
    partitionPolicies(sql),
    listPartitions(sql),
    importedPartitions(sql),
  ]);
  const now = Date.now();
  // what upkeep would drop: partitions holding imported rows stay unless drop_imported is set
  const decisions = retentionDecisions(policies, parts, imported, new Date(now));
  return policies.map((p) => {
    const mine = parts.filter((x) => x.parent === p.table);
    return {
      table: p.table,
      period: p.period,
      retentionDays: p.retentionDays,
      partitions: mine.length,
      current: mine.some((x) => x.from.getTime() <= now && now < x.to.getTime()),
      ahead: mine.filter((x) => x.from.getTime() > now).length,
      newestEndsAt:
        mine.length > 0 ? new Date(Math.max(...mine.map((x) => x.to.getTime()))).toISOString() : null,
      expired: decisions.filter((d) => d.table === p.table && d.drop).map((d) => d.partition.name),
    };
  });
}

/** The newest (and newest verified) regular backup of this database; other databases' never count. */
async function backupAges(catalogue: BackupCatalogue | null, sql: Sql) {
  const [[{ name } = { name: '' }], scan] = await Promise.all([
    sql<{ name: string }[]>`select current_database() as name`,
    catalogue ? catalogue.scan() : Promise.resolve({ backups: [], broken: [] }),
  ]);
  const list = scan.backups.filter((b) => b.database === name && b.kind !== 'safety');
  const now = Date.now();
  const last = list[0];
  const verified = list.find((b) => b.verification?.ok);
  const age = (iso: string | undefined) => (iso ? Math.round((now - new Date(iso).getTime()) / 1000) : null);
  return {
    database: name,
    count: list.length,
    safetyCount: scan.backups.filter((b) => b.database === name && b.kind === 'safety').length,
    lastSuccessId: last?.id ?? null,
    lastSuccessAt: last?.createdAt ?? null,
    lastSuccessAgeS: age(last?.createdAt),
    lastOffsiteError: last?.offsiteError ?? null,
    lastVerifiedId: verified?.id ?? null,
    lastVerifiedAt: verified?.verification?.verifiedAt ?? null,
    lastVerifiedAgeS: age(verified?.createdAt),
    brokenManifests: scan.broken,
  };
}
