import { type EventType, eventTable } from '@spywatcher/events';
import type { Queryable, Sql, TransactionSql } from './client.ts';

/**
 * Partition layout lives in the `event_partitioning` table (seeded by migration 0003) so
 * every writer — ingest, the SQLite importer, tests — and the SQL function
 * `sw_ensure_partition` agree on it. See apps/migrator/README.md, "Partitions and retention".
 */
export interface PartitionPolicy {
  table: string;
  period: 'week' | 'month';
  /** null (the default): keep every partition forever. */
  retentionDays: number | null;
  /** Whether retention may drop partitions holding imported legacy rows (default false). */
  dropImported: boolean;
}

export interface PartitionInfo {
  parent: string;
  name: string;
  from: Date;
  to: Date;
}

export async function partitionPolicies(sql: Queryable): Promise<PartitionPolicy[]> {
  const rows = await sql<
    { table_name: string; period: 'week' | 'month'; retention_days: number | null; drop_imported: boolean }[]
  >`
    select table_name, period, retention_days, drop_imported from event_partitioning order by table_name
  `;
  return rows.map((r) => ({
    table: r.table_name,
    period: r.period,
    retentionDays: r.retention_days,
    dropImported: r.drop_imported,
  }));
}

export class RetentionError extends Error {}

/**
 * Sets a table's retention (days, or null to keep forever) and, when given, whether it may drop
 * partitions holding imported rows. Returns the policy as stored.
 */
export async function setRetention(
  sql: Queryable,
  table: string,
  retentionDays: number | null,
  dropImported?: boolean,
): Promise<PartitionPolicy> {
  if (retentionDays !== null && (!Number.isInteger(retentionDays) || retentionDays < 1)) {
    throw new RetentionError(
      `retention must be a whole number of days (1 or more) or none, got ${retentionDays}`,
    );
  }
  const [row] = await sql<{ table_name: string }[]>`
    update event_partitioning
    set retention_days = ${retentionDays}, drop_imported = coalesce(${dropImported ?? null}::boolean, drop_imported)
    where table_name = ${table}
    returning table_name
  `;
  if (!row) {
    const tables = (await partitionPolicies(sql)).map((p) => p.table);
    throw new RetentionError(`${table} is not an event table (one of ${tables.join(', ')})`);
  }
  return (await partitionPolicies(sql)).find((p) => p.table === table)!;
}

/** Names of the partitions a legacy import wrote rows to (migration 0131). */
export async function importedPartitions(sql: Queryable): Promise<Set<string>> {
  const rows = await sql<{ partition_name: string }[]>`select partition_name from imported_partitions`;
  return new Set(rows.map((r) => r.partition_name));
}

/**
 * Records, in the transaction that writes imported rows, which partitions of `parent` hold them:
 * those whose ranges hold `times` (one per day or period of the rows is enough).
 */
export async function markPartitionsImported(
  tx: TransactionSql,
  parent: string,
  times: readonly Date[],
  sourceKey: string,
): Promise<void> {
  await tx`
    insert into imported_partitions (partition_name, parent, source_key)
    select distinct p, ${parent}, ${sourceKey}
    from unnest(${times.map((t) => t.toISOString())}::timestamptz[]) t, sw_partition_of(${parent}, t) p
    where p is not null
    on conflict (partition_name) do nothing
  `;
}

export interface RetentionDecision {
  table: string;
  partition: PartitionInfo;
  /** false: past retention but kept, because it holds imported rows and drop_imported is off. */
  drop: boolean;
  reason: string;
}

/**
 * The partitions past their table's retention (whose whole range is older than it), each to
 * drop or to keep. Without a retention a table has none; one holding imported rows is kept
 * unless the table's drop_imported is set.
 */
export function retentionDecisions(
  policies: readonly PartitionPolicy[],
  partitions: readonly PartitionInfo[],
  imported: ReadonlySet<string>,
  now: Date,
  override: Partial<Record<string, number | null>> = {},
): RetentionDecision[] {
  const out: RetentionDecision[] = [];
  for (const policy of policies) {
    const retention = policy.table in override ? override[policy.table] : policy.retentionDays;
    if (retention === null || retention === undefined) continue;
    const cutoff = new Date(now.getTime() - retention * 86_400_000);
    for (const p of partitions) {
      if (p.parent !== policy.table || p.to.getTime() > cutoff.getTime()) continue;
      const old = `every row is older than the ${retention}-day retention (cutoff ${cutoff.toISOString()})`;
      if (imported.has(p.name) && !policy.dropImported) {
        out.push({
          table: policy.table,
          partition: p,
          drop: false,
          reason: `${old}, but it holds imported legacy rows: kept until drop_imported is set for ${policy.table}`,
        });
      } else {
        out.push({ table: policy.table, partition: p, drop: true, reason: old });
      }
    }
  }
  return out;
}

/** Existing partitions of every event table with their bounds. */
export async function listPartitions(sql: Queryable): Promise<PartitionInfo[]> {
  const rows = await sql<{ parent: string; name: string; lower: Date; upper: Date }[]>`
    select p.relname as parent, c.relname as name, b.lower, b.upper
    from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
    join pg_class p on p.oid = i.inhparent
    join event_partitioning e on e.table_name = p.relname
    cross join lateral sw_partition_range(c.oid) b
    where p.relnamespace = current_schema()::regnamespace
    order by p.relname, b.lower
  `;
  return rows.map((r) => ({ parent: r.parent, name: r.name, from: r.lower, to: r.upper }));
}

/**
 * Remembers which periods are known to have a partition, so a hot write path asks the
 * database only when a batch touches a period it has not seen. Periods come from
 * `event_partitioning`, loaded on first use.
 */
export class PartitionCache {
  private readonly known = new Set<string>();
  private periods: Map<string, 'week' | 'month'> | undefined;

  async periodOf(sql: Queryable, table: string): Promise<'week' | 'month'> {
    if (!this.periods) {
      const policies = await partitionPolicies(sql);
      this.periods = new Map(policies.map((p) => [p.table, p.period]));
    }
    const period = this.periods.get(table);
    if (!period) throw new Error(`no partitioning policy for table ${table}`);
    return period;
  }
  has(key: string): boolean {
    return this.known.has(key);
  }
  add(key: string): void {
    this.known.add(key);
  }
  /** Forget known partitions (after retention dropped some, or a test reset the schema). */
  clear(): void {
    this.known.clear();
    this.periods = undefined;
  }
}

function periodKey(table: string, at: Date, period: 'week' | 'month'): string {
  const d = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()));
  if (period === 'month') return `${table}:${d.getUTCFullYear()}-${d.getUTCMonth()}`;
  const dow = (d.getUTCDay() + 6) % 7; // ISO weeks start on Monday, like date_trunc('week')
  d.setUTCDate(d.getUTCDate() - dow);
  return `${table}:${d.toISOString().slice(0, 10)}`;
}

/**
 * Makes sure a partition exists for every timestamp given, creating missing ones, and
 * returns the names of the partitions it created. Each creation is its own short
 * statement (`sw_ensure_partition` serialises concurrent creators of the same period with
 * an advisory lock), so call it with the pool before the transaction that inserts the
 * rows: that keeps the inserting transaction free of DDL locks.
 */
export async function ensurePartitions(
  sql: Queryable,
  type: EventType,
  timestamps: Iterable<Date>,
  cache: PartitionCache = new PartitionCache(),
): Promise<string[]> {
  const table = eventTable(type);
  const period = await cache.periodOf(sql, table);
  const wanted = new Map<string, Date>();
  for (const ts of timestamps) {
    const key = periodKey(table, ts, period);
    if (!cache.has(key) && !wanted.has(key)) wanted.set(key, ts);
  }
  const created: string[] = [];
  for (const [key, ts] of wanted) {
    const [row] = await sql<{ name: string; created: boolean }[]>`
      select name, created from sw_ensure_partition(${table}, ${ts})
    `;
    if (row?.created) created.push(row.name);
    cache.add(key);
  }
  return created;
}

/** True when PostgreSQL refused a row because no partition covers it (SQLSTATE 23514). */
export function isMissingPartitionError(error: unknown): boolean {
  const e = error as { code?: string; message?: string } | null;
  return e?.code === '23514' && /no partition of relation/.test(e.message ?? '');
}

export interface UpkeepOptions {
  /** How many periods after the current one must exist. */
  ahead?: number;
  /** Override retention per table name (days; null = keep forever). */
  retention?: Partial<Record<string, number | null>>;
  /** Plan only. */
  dryRun?: boolean;
  /** Skip dropping expired partitions. */
  skipRetention?: boolean;
  now?: Date;
}

export interface UpkeepAction {
  /** keep: past retention, kept because it holds imported rows (see retentionDecisions). */
  action: 'create' | 'drop' | 'keep';
  table: string;
  partition: string;
  from: string;
  to: string;
  reason: string;
}

/**
 * Creates partitions for the current period and `ahead` more for every event table, and
 * detaches and drops partitions whose whole range is older than the table's retention (a
 * partition holding imported rows only when the table's drop_imported is set).
 */
export async function partitionUpkeep(sql: Sql, options: UpkeepOptions = {}): Promise<UpkeepAction[]> {
  const ahead = options.ahead ?? 3;
  const now = options.now ?? new Date();
  const policies = await partitionPolicies(sql);
  const existing = await listPartitions(sql);
  const actions: UpkeepAction[] = [];

  for (const policy of policies) {
    const planned = await sql<{ name: string; lower: Date; upper: Date }[]>`
      select name, lower, upper
      from generate_series(0, ${ahead}::int) as k
      cross join lateral sw_partition_bounds(${policy.table}, ${now}::timestamptz + (k || ' ' || ${policy.period})::interval)
    `;
    for (const p of planned) {
      // an imported month may cover the period (migration 0132)
      const covered = (e: PartitionInfo) =>
        e.name === p.name || (e.from.getTime() <= p.lower.getTime() && p.lower.getTime() < e.to.getTime());
      if (existing.some((e) => e.parent === policy.table && covered(e))) continue;
      actions.push({
        action: 'create',
        table: policy.table,
        partition: p.name,
        from: p.lower.toISOString(),
        to: p.upper.toISOString(),
        reason: `keep ${ahead} ${policy.period}(s) ahead`,
      });
    }
  }
  if (!options.skipRetention) {
    const imported = await importedPartitions(sql);
    for (const d of retentionDecisions(policies, existing, imported, now, options.retention)) {
      actions.push({
        action: d.drop ? 'drop' : 'keep',
        table: d.table,
        partition: d.partition.name,
        from: d.partition.from.toISOString(),
        to: d.partition.to.toISOString(),
        reason: d.reason,
      });
    }
  }

  if (options.dryRun) return actions;
  for (const a of actions) {
    if (a.action === 'create') {
      await sql`select sw_ensure_partition(${a.table}, ${new Date(a.from)})`;
    } else if (a.action === 'drop') {
      await sql.begin(async (tx) => {
        await tx`alter table ${tx(a.table)} detach partition ${tx(a.partition)}`;
        await tx`drop table ${tx(a.partition)}`;
        await tx`delete from imported_partitions where partition_name = ${a.partition}`;
      });
    }
  }
  return actions;
}
