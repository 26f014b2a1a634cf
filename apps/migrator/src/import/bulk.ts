import { readFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import type { Sql, TransactionSql } from '@spywatcher/db';
import { type EventSpec, eventCreatedAt, type TableSpec, unsafeIntSql } from './tables.ts';
import { isProblem, MAX_MS } from './values.ts';

const DAY = 86_400_000;

export type Period = 'week' | 'month';

/** Start (epoch ms) of the partition period holding `ms`, as `date_trunc(period, ts, 'UTC')` computes it. */
export function periodStart(period: Period, ms: number): number {
  if (period === 'week') {
    const day = Math.floor(ms / DAY);
    // 1970-01-01 was a Thursday: Monday is three days before
    return (day - ((((day + 3) % 7) + 7) % 7)) * DAY;
  }
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** Where readers find the table mapping each legacy id of `spec` to its period start. */
export const periodTable = (spec: TableSpec) => `sw_periods."_sw_periods_${spec.legacy}"`;

/** The period of rows whose date is not valid, in the period table (a start is a whole day). */
export const UNDATED = -1;

/**
 * `periodStart` in SQLite for an INTEGER `createdAt` (epoch ms, not negative, so integer division
 * floors): computed by SQLite itself, it spares a call into JavaScript per row.
 */
export function periodSql(period: Period, column: string): string {
  return period === 'week'
    ? `(${column} / ${DAY} - (${column} / ${DAY} + 3) % 7) * ${DAY}`
    : `unixepoch(${column} / 1000, 'unixepoch', 'start of month') * 1000`;
}

const quoteLiteral = (s: string) => `'${s.replaceAll("'", "''")}'`;

/**
 * The legacy tables indexed by partition period, in a scratch SQLite file beside nothing else
 * (memory stays flat): every connection reading periods attaches it (`attachPeriodIndex`), the
 * main thread's and each conversion worker's.
 */
export class PeriodIndex {
  readonly path: string;
  private readonly db: DatabaseSync;

  constructor(legacyPath: string, path: string) {
    this.path = path;
    this.db = new DatabaseSync(path);
    this.db.exec('pragma journal_mode = off; pragma synchronous = off');
    this.db.exec(`attach database ${quoteLiteral(legacyPath)} as legacy`);
  }

  /**
   * Indexes one legacy table by partition period, so a period's rows can be read in id order
   * without scanning the table once per period; returns the rows per period. Rows whose date is
   * not valid get the period UNDATED, and so do rows holding an integer past 2^53 (JavaScript
   * cannot read it as a number; the undated period reads them as text). Integer dates from 1970
   * on get their period from SQL; everything else (text dates, earlier, out-of-range or
   * fractional values) goes through the same conversion as the import.
   */
  index(spec: EventSpec, period: Period): Map<number, number> {
    const db = this.db;
    db.function('sw_period', { deterministic: true }, (createdAt: unknown) => {
      const ms = eventCreatedAt({ createdAt } as never);
      return isProblem(ms) ? UNDATED : periodStart(period, ms);
    });
    const table = `main."_sw_periods_${spec.legacy}"`;
    const c = '"createdAt"';
    db.exec(`drop table if exists ${table}`);
    db.exec(
      `create table ${table} (p integer not null, id integer not null, primary key (p, id)) without rowid`,
    );
    db.exec(
      `insert into ${table} (id, p) select id, case when typeof(${c}) = 'integer' and ${c} >= 0 and ${c} < ${MAX_MS}
         then ${periodSql(period, c)} when ${unsafeIntSql(spec, '')} then ${UNDATED} else sw_period(${c}) end
       from legacy."${spec.legacy}"`,
    );
    const counts = new Map<number, number>();
    const stmt = db.prepare(`select p, count(*) as n from ${table} where p <> ${UNDATED} group by p`);
    for (const r of stmt.iterate() as Iterable<{ p: number; n: number }>) counts.set(r.p, r.n);
    return counts;
  }

  close(): void {
    this.db.close();
  }
}

export function attachPeriodIndex(db: DatabaseSync, path: string): void {
  db.exec(`attach database ${quoteLiteral(path)} as sw_periods`);
}

export interface PartitionTarget {
  name: string;
  lower: Date;
  upper: Date;
}

/**
 * The partition an import loads a month of `parent` into: that month, whatever the table's own
 * period (imported history is cold: a month a partition; migration 0132), named as the table's
 * partitions are, after its first day.
 */
export function importTarget(parent: string, monthStart: number): PartitionTarget {
  const lower = new Date(monthStart);
  const upper = new Date(Date.UTC(lower.getUTCFullYear(), lower.getUTCMonth() + 1, 1));
  return { name: `${parent}_p${lower.toISOString().slice(0, 10).replaceAll('-', '')}`, lower, upper };
}

/** The parent's shape, to give a standalone table the same indexes, keys and statement triggers. */
interface ParentShape {
  /** Column and CHECK definitions for CREATE TABLE. */
  columns: string[];
  indexes: string[];
  constraints: string[];
  /** Statement-level insert triggers fired on the standalone table during the load. */
  statementTriggers: string[];
  /** Set-wise companions (`<trigger function>_bulk(regclass)`) called once over the loaded
   * table instead of firing their trigger on every COPY (see migration 0071). */
  bulkCollectors: string[];
  rowTriggers: boolean;
}

const shapes = new Map<string, Promise<ParentShape>>();

export function parentShape(sql: Sql, parent: string): Promise<ParentShape> {
  let shape = shapes.get(parent);
  if (!shape) {
    shape = readParentShape(sql, parent);
    shape.catch(() => shapes.delete(parent));
    shapes.set(parent, shape);
  }
  return shape;
}

async function readParentShape(sql: Sql, parent: string): Promise<ParentShape> {
  const indexes = await sql<{ def: string; constraint_def: string | null }[]>`
    select pg_get_indexdef(i.indexrelid) as def, pg_get_constraintdef(c.oid) as constraint_def
    from pg_index i
    left join pg_constraint c on c.conindid = i.indexrelid and c.conrelid = i.indrelid and c.contype in ('p', 'u')
    where i.indrelid = ${parent}::regclass
  `;
  const columns = await sql<
    { name: string; type: string; not_null: boolean; generated: string; expr: string | null }[]
  >`
    select a.attname as name,
           -- ATTACH PARTITION requires the same collation on every column (ids are COLLATE "C")
           format_type(a.atttypid, a.atttypmod) ||
             case when a.attcollation <> t.typcollation then ' collate ' || quote_ident(co.collname) else '' end as type,
           a.attnotnull as not_null, a.attgenerated as generated, pg_get_expr(d.adbin, d.adrelid) as expr
    from pg_attribute a
    join pg_type t on t.oid = a.atttypid
    left join pg_collation co on co.oid = a.attcollation
    left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where a.attrelid = ${parent}::regclass and a.attnum > 0 and not a.attisdropped
    order by a.attnum
  `;
  const checks = await sql<{ name: string; def: string }[]>`
    select conname as name, pg_get_constraintdef(oid) as def
    from pg_constraint where conrelid = ${parent}::regclass and contype = 'c'
  `;
  const triggers = await sql<{ def: string; tgtype: number; bulk: string | null }[]>`
    select pg_get_triggerdef(t.oid) as def, t.tgtype,
           case when to_regprocedure(format('%I.%I(regclass)', n.nspname, p.proname || '_bulk')) is not null
             then format('%I.%I', n.nspname, p.proname || '_bulk') end as bulk
    from pg_trigger t
    join pg_proc p on p.oid = t.tgfoid
    join pg_namespace n on n.oid = p.pronamespace
    where t.tgrelid = ${parent}::regclass and not t.tgisinternal
  `;
  // tgtype bit 0: row-level; bit 2: on insert
  const statementInsert = triggers.filter((t) => (t.tgtype & 1) === 0 && (t.tgtype & 4) !== 0);
  return {
    columns: [
      ...columns.map(
        (c) =>
          `"${c.name}" ${c.type}` +
          (c.expr === null
            ? ''
            : c.generated === 's'
              ? ` generated always as (${c.expr}) stored`
              : ` default ${c.expr}`) +
          (c.not_null ? ' not null' : ''),
      ),
      ...checks.map((c) => `constraint "${c.name}" ${c.def}`),
    ],
    indexes: indexes.filter((i) => i.constraint_def === null).map((i) => i.def),
    constraints: indexes.filter((i) => i.constraint_def !== null).map((i) => i.constraint_def!),
    statementTriggers: statementInsert.filter((t) => t.bulk === null).map((t) => t.def),
    bulkCollectors: statementInsert.filter((t) => t.bulk !== null).map((t) => t.bulk!),
    rowTriggers: triggers.some((t) => (t.tgtype & 1) === 1),
  };
}

/** Rewrites `CREATE [UNIQUE] INDEX name ON [ONLY] parent USING ...` for another table, letting PostgreSQL name it. */
export function indexOn(def: string, table: string): string {
  const m = /^CREATE (UNIQUE )?INDEX \S+ ON (?:ONLY )?\S+ (USING .*)$/s.exec(def);
  if (!m) throw new Error(`unexpected index definition: ${def}`);
  return `CREATE ${m[1] ?? ''}INDEX ON ${table} ${m[2]}`;
}

export function triggerOn(def: string, parent: string, table: string): string {
  const re = new RegExp(` ON (?:ONLY )?(?:[a-z_"]+\\.)?"?${parent}"? `);
  if (!re.test(def)) throw new Error(`unexpected trigger definition: ${def}`);
  return def.replace(re, ` ON ${table} `);
}

export class BulkUnavailable extends Error {}

/**
 * CPU milliseconds (user + system) a PostgreSQL backend has used, when the server runs on this
 * machine and /proc shows it (null otherwise): how the report splits PostgreSQL's CPU by step.
 */
export function backendCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // clock ticks of 10 ms (USER_HZ is 100 on Linux)
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return null;
  }
}

/** Times `run` under `step`, and the backend's CPU under `pg_cpu:<step>` when it can be read. */
export async function timed<T>(
  time: (step: string, ms: number) => void,
  step: string,
  pid: number | null,
  run: () => Promise<T>,
): Promise<T> {
  const t0 = performance.now();
  const c0 = pid === null ? null : backendCpuMs(pid);
  const out = await run();
  time(step, performance.now() - t0);
  const c1 = pid === null ? null : backendCpuMs(pid);
  if (c0 !== null && c1 !== null) time(`pg_cpu:${step}`, c1 - c0);
  return out;
}

/** Milliseconds per step of the import, summed over the lanes (ImportReport.phases). */
export type StepTimes = Record<string, number>;

interface LoadContext {
  tx: TransactionSql;
  parent: string;
  /** The standalone table, quoted. */
  table: string;
  target: PartitionTarget;
  shape: ParentShape;
}

/**
 * What runs over a period's rows once they are all loaded, in order, each in the period's
 * transaction and timed under its name. A set-based pass over the loaded rows belongs here (or
 * in a `<trigger function>_bulk(regclass)` companion, which `collect` calls), never per row.
 */
const AFTER_LOAD: { step: string; run: (c: LoadContext) => Promise<void> }[] = [
  {
    step: 'index',
    run: async ({ tx, table, shape }) => {
      for (const def of shape.statementTriggers) {
        const name = /^CREATE (?:CONSTRAINT )?TRIGGER (\S+) /.exec(def)?.[1];
        await tx.unsafe(`drop trigger ${name} on ${table}`);
      }
      await tx`set local maintenance_work_mem = '64MB'`;
      // A period's table is small (tens of thousands of rows): starting parallel workers (a fork
      // each) for its index builds cost more than they saved, and the other lanes keep the cores
      // busy anyway.
      await tx`set local max_parallel_maintenance_workers = 0`;
      for (const def of shape.constraints) await tx.unsafe(`alter table ${table} add ${def}`);
      for (const def of shape.indexes) await tx.unsafe(indexOn(def, table));
    },
  },
  {
    // A query fixes its partitions when it is planned and takes its snapshot just after: without
    // this lock, a projector planned before the commit could execute after it, take this
    // transaction as finished (tx < xmin) while not scanning the new partition, move its cursor
    // past these rows and never read them (seen in the tailing test). ATTACH alone takes a lock
    // readers do not wait for; this one (what CREATE TABLE ... PARTITION OF takes for a live
    // partition) makes the commit wait for queries planned before it, and queries planned after
    // it wait for the commit. It is taken before the bulk collectors run: a writer inserting
    // into the parent meanwhile may wait for words or ids they insert (unique keys), and must
    // not be what this lock waits for. Held for the collectors, the attach and the checkpoint.
    step: 'lock',
    run: async ({ tx, parent }) => {
      await tx.unsafe(`lock table ${parent} in access exclusive mode`);
    },
  },
  {
    // the parent's statement-trigger work, once over the loaded rows (search vocabulary, ...)
    step: 'collect',
    run: async ({ tx, table, shape }) => {
      for (const fn of shape.bulkCollectors) await tx.unsafe(`select ${fn}($1::regclass)`, [table]);
    },
  },
  {
    step: 'attach',
    run: async ({ tx, parent, table, target }) => {
      await tx.unsafe(
        `alter table ${parent} attach partition ${table} for values from ('${target.lower.toISOString()}') to ('${target.upper.toISOString()}')`,
      );
      await tx.unsafe(`alter table ${table} drop constraint "${target.name}_import_bounds"`);
    },
  },
];

/**
 * Loads a whole partition period that does not exist yet in ONE transaction: a standalone
 * table shaped like the parent (no indexes), rows inserted into it, then the AFTER_LOAD steps:
 * the parent's indexes and primary key built once over the loaded rows, the set-based
 * collectors, and ATTACH (which adopts the matching indexes instead of building new ones, and
 * skips its validation scan thanks to the bounds CHECK); `finish` last (the checkpoint).
 * The rows' `tx` is this transaction's id: projectors read only below pg_snapshot_xmin, which
 * cannot pass a transaction still running, so when it commits every row is after their cursors.
 * `fill` gets the standalone table's name (unquoted, for copyRows). Throws BulkUnavailable
 * (before reading any row) when the partition appeared meanwhile or the parent has row-level
 * triggers the load would bypass.
 */
export async function loadPeriod(
  sql: Sql,
  parent: string,
  target: PartitionTarget,
  fill: (tx: TransactionSql, table: string) => Promise<void>,
  finish: (tx: TransactionSql) => Promise<void>,
  time: (step: string, ms: number) => void = () => {},
): Promise<void> {
  const shape = await parentShape(sql, parent);
  if (shape.rowTriggers) throw new BulkUnavailable(`${parent} has row-level triggers`);
  const table = `"${target.name}"`;
  await sql.begin(async (tx) => {
    const t = tx as TransactionSql;
    const t0 = performance.now();
    const [backend] = await t<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const pid = backend?.pid ?? null;
    const c0 = pid === null ? null : backendCpuMs(pid);
    // Safe: the checkpoint commits with the rows; a commit lost in a server crash loses both,
    // and the next run loads the period again.
    await t`set local synchronous_commit = off`;
    // The month's lock, which sw_ensure_partition takes for every month a period touches: a
    // writer needing a partition in this month waits for the attach, then finds it.
    await t`select pg_advisory_xact_lock(hashtext(${`sw_partition:${target.name}`}))`;
    const lower = target.lower.toISOString();
    const upper = target.upper.toISOString();
    const [exists] = await t<{ r: string | null; overlap: string | null }[]>`
      select to_regclass(${table})::text as r,
             (select min(c.relname) from pg_inherits i join pg_class c on c.oid = i.inhrelid
              cross join lateral sw_partition_range(c.oid) b
              where i.inhparent = ${parent}::regclass and b.lower < ${upper} and b.upper > ${lower}) as overlap`;
    if (exists?.r) throw new BulkUnavailable(`${target.name} exists`);
    if (exists?.overlap) throw new BulkUnavailable(`${exists.overlap} holds part of ${target.name}'s month`);
    // Spelled out from the catalog rather than LIKE parent, which would hold a lock on the parent
    // for the whole load and queue a live writer's partition creation (and everything behind it).
    await t.unsafe(
      `create table ${table} (${[
        ...shape.columns,
        `constraint "${target.name}_import_bounds" check (occurred_at >= '${lower}' and occurred_at < '${upper}')`,
      ].join(', ')})`,
    );
    for (const def of shape.statementTriggers) await t.unsafe(triggerOn(def, parent, table));
    time('create', performance.now() - t0);
    const c1 = pid === null ? null : backendCpuMs(pid);
    if (c0 !== null && c1 !== null) time('pg_cpu:create', c1 - c0);
    // the COPYs' wall time is timed by the caller per batch; their server CPU here (a message's
    // includes its search columns: the tsvector and the flags)
    const f0 = pid === null ? null : backendCpuMs(pid);
    await fill(t, target.name);
    const f1 = pid === null ? null : backendCpuMs(pid);
    if (f0 !== null && f1 !== null)
      time(parent === 'message_events' ? 'pg_cpu:copy_messages' : 'pg_cpu:copy', f1 - f0);
    for (const { step, run } of AFTER_LOAD) {
      await timed(time, step, pid, () => run({ tx: t, parent, table, target, shape }));
    }
    await timed(time, 'checkpoint', pid, () => finish(t));
  });
}
