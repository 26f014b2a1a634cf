/**
 * The health report's collectors: each reads one thing from PostgreSQL (or the backup catalogue)
 * and returns it as data; health-rules.ts judges it.
 */
import {
  importedPartitions,
  listPartitions,
  partitionPolicies,
  type Queryable,
  retentionDecisions,
  type Sql,
  type StandbyLag,
  type StandbyStatus,
  standbyLags,
  standbyStatus,
} from '@spywatcher/db';
import type { BackupCatalogue, BrokenManifest } from './catalogue.ts';
import type { HealthThresholds } from './health.ts';

const num = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));

export interface DatabaseFacts {
  name: string;
  sizeBytes: number;
  /** Blocks read from the buffer cache or from disk since statistics began. */
  blocksTotal: number;
  cacheHitRatio: number | null;
}

export interface SizeSections {
  tables: {
    schema: string;
    table: string;
    partitioned: boolean;
    partitions: number;
    totalBytes: number;
    tableBytes: number;
    indexBytes: number;
  }[];
  partitions: { parent: string; name: string; bytes: number }[];
  indexes: { index: string; table: string; bytes: number }[];
  /** True when a lock held elsewhere made the report read sizes from pg_class (last VACUUM/ANALYZE). */
  approximate: boolean;
}

export interface UnusedIndexes {
  statsResetAt: string | null;
  indexes: { schema: string; index: string; table: string; sizeBytes: number }[];
}

export interface DuplicateIndex {
  schema: string;
  index: string;
  table: string;
  coveredBy: string;
  kind: 'duplicate' | 'redundant';
}

export interface LongQuery {
  pid: number;
  application: string;
  user: string;
  durationS: number;
  query: string;
}

export interface Sessions {
  long: LongQuery[];
  idle: (LongQuery & { state: string })[];
}

export interface BlockingLock {
  blockedPid: number;
  blockingPids: number[];
  blockedApplication: string;
  waitEvent: string | null;
  waitingS: number;
  blockedQuery: string;
}

export interface ConnectionStats {
  max: number;
  total: number;
  byState: Record<string, number>;
  byApplication: Record<string, number>;
}

export interface VacuumStat {
  schema: string;
  table: string;
  liveTuples: number;
  deadTuples: number;
  deadRatio: number;
  lastVacuum: string | null;
  lastAutovacuum: string | null;
  lastAnalyze: string | null;
  lastAutoanalyze: string | null;
}

export interface Wraparound {
  databaseAge: number;
  freezeMaxAge: number;
  oldestTable: string | null;
  oldestTableAge: number | null;
}

export interface PartitionCoverage {
  table: string;
  period: 'week' | 'month';
  retentionDays: number | null;
  partitions: number;
  /** A partition holds now. */
  current: boolean;
  /** Partitions starting after now. */
  ahead: number;
  newestEndsAt: string | null;
  /** What upkeep would drop. */
  expired: string[];
}

export interface BackupAges {
  database: string;
  count: number;
  safetyCount: number;
  lastSuccessId: string | null;
  lastSuccessAt: string | null;
  lastSuccessAgeS: number | null;
  lastOffsiteError: string | null;
  lastVerifiedId: string | null;
  lastVerifiedAt: string | null;
  lastVerifiedAgeS: number | null;
  brokenManifests: BrokenManifest[];
}

export interface ReplicationState {
  role: 'primary' | 'standby';
  self: StandbyStatus;
  standbys: StandbyLag[];
}

/**
 * Streaming replication as this server sees it: on a primary, its standbys and their replay lag;
 * on a standby, its own lag and whether WAL still arrives.
 */
export async function replicationState(sql: Sql): Promise<ReplicationState> {
  const [self, standbys] = await Promise.all([standbyStatus(sql), standbyLags(sql)]);
  return { role: self.standby ? 'standby' : 'primary', self, standbys };
}

export async function databaseFacts(sql: Sql): Promise<DatabaseFacts> {
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
export async function sizesWithoutWaiting(sql: Sql): Promise<SizeSections> {
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

async function sizeQueries(sql: Queryable, exact: boolean): Promise<Omit<SizeSections, 'approximate'>> {
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
export async function unusedIndexes(sql: Sql): Promise<UnusedIndexes> {
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
export async function duplicateIndexes(sql: Sql): Promise<DuplicateIndex[]> {
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

export async function sessions(sql: Sql, t: HealthThresholds): Promise<Sessions> {
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

export async function blockingLocks(sql: Sql): Promise<BlockingLock[]> {
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

export async function connectionStats(sql: Sql): Promise<ConnectionStats> {
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

export async function vacuumStats(sql: Sql): Promise<VacuumStat[]> {
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

export async function wraparoundAge(sql: Sql): Promise<Wraparound> {
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
export async function partitionCoverage(sql: Sql): Promise<PartitionCoverage[]> {
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
export async function backupAges(catalogue: BackupCatalogue | null, sql: Sql): Promise<BackupAges> {
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
