import type { Sql } from '@spywatcher/db';
import { estimateIndexBloat, estimateTableBloat } from './bloat.ts';
import { JobCancelledError, type JobContext } from './jobs.ts';
import { qualified } from './tables.ts';

export const MAINTENANCE_KINDS = ['vacuum', 'analyze', 'reindex'] as const;
export type MaintenanceKind = (typeof MAINTENANCE_KINDS)[number];

export interface MaintenanceStep {
  target: string;
  statement: string;
  reason: string;
}

export interface MaintenancePlan {
  kind: MaintenanceKind;
  scope: 'all' | 'chosen';
  steps: MaintenanceStep[];
  skipped: { target: string; reason: string }[];
}

export class UnknownTableError extends Error {
  constructor(names: string[]) {
    super(`no such table: ${names.join(', ')} (names are case-sensitive; "schema.table" or "table")`);
    this.name = 'UnknownTableError';
  }
}

interface TableStats {
  oid: number;
  schema: string;
  name: string;
  live: number;
  dead: number;
  modSinceAnalyze: number;
  lastVacuum: Date | null;
  lastAnalyze: Date | null;
  sizeBytes: number;
}

const ago = (d: Date | null) => (d ? `${d.toISOString()}` : 'never');

async function leafTables(sql: Sql, chosen?: string[]): Promise<TableStats[]> {
  let oids: number[] | null = null;
  if (chosen && chosen.length > 0) {
    const found = await sql<{ input: string; oid: number | null }[]>`
      select input, (
        select c.oid::int from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p', 'm')
          and ((position('.' in input) > 0 and n.nspname || '.' || c.relname = input)
               or (c.relname = input and n.nspname = current_schema()))
        limit 1
      ) as oid
      from unnest(${chosen}::text[]) as input
    `;
    const missing = found.filter((f) => f.oid === null).map((f) => f.input);
    if (missing.length > 0) throw new UnknownTableError(missing);
    oids = found.map((f) => f.oid as number);
  }
  const rows = await sql<
    {
      oid: number;
      schema: string;
      name: string;
      live: string;
      dead: string;
      mod: string;
      last_vacuum: Date | null;
      last_analyze: Date | null;
      size: string;
    }[]
  >`
    select c.oid::int as oid, n.nspname as schema, c.relname as name,
           coalesce(s.n_live_tup, 0) as live, coalesce(s.n_dead_tup, 0) as dead,
           coalesce(s.n_mod_since_analyze, 0) as mod,
           greatest(s.last_vacuum, s.last_autovacuum) as last_vacuum,
           greatest(s.last_analyze, s.last_autoanalyze) as last_analyze,
           -- pg_class, not pg_table_size: planning must never wait for a lock held on the table
           c.relpages::bigint * current_setting('block_size')::int as size
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    left join pg_stat_user_tables s on s.relid = c.oid
    where c.relkind in ('r', 'm')
      and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'
      ${
        oids
          ? sql`and c.oid in (
              with recursive tree as (
                select o as relid from unnest(${oids}::oid[]) as o
                union all
                select i.inhrelid from tree t join pg_inherits i on i.inhparent = t.relid
              ) select relid from tree)`
          : sql``
      }
    order by 2, 3
  `;
  return rows.map((r) => ({
    oid: r.oid,
    schema: r.schema,
    name: r.name,
    live: Number(r.live),
    dead: Number(r.dead),
    modSinceAnalyze: Number(r.mod),
    lastVacuum: r.last_vacuum,
    lastAnalyze: r.last_analyze,
    sizeBytes: Number(r.size),
  }));
}

/** What a maintenance job would do and why; a dry run returns exactly this. */
export async function planMaintenance(
  sql: Sql,
  kind: MaintenanceKind,
  chosen?: string[],
): Promise<MaintenancePlan> {
  const scope = chosen && chosen.length > 0 ? 'chosen' : 'all';
  const tables = await leafTables(sql, chosen);
  const steps: MaintenanceStep[] = [];
  const skipped: MaintenancePlan['skipped'] = [];

  if (kind === 'reindex') {
    if (scope === 'chosen') {
      for (const t of tables) {
        steps.push({
          target: `${t.schema}.${t.name}`,
          statement: `reindex table concurrently ${qualified(t.schema, t.name)}`,
          reason: 'requested',
        });
      }
    } else {
      const bloat = await estimateIndexBloat(sql);
      for (const b of bloat) {
        const target = `${b.schema}.${b.index}`;
        const statement = `reindex index concurrently ${qualified(b.schema, b.index)}`;
        if (!b.valid)
          steps.push({ target, statement, reason: 'index is invalid (left by a failed concurrent build)' });
        else if (b.bloatRatio >= 0.3 && b.bloatBytes >= 1_048_576)
          steps.push({
            target,
            statement,
            reason: `estimated bloat ${Math.round(b.bloatRatio * 100)}% (${b.bloatBytes} of ${b.sizeBytes} bytes)`,
          });
      }
      if (steps.length === 0)
        skipped.push({ target: '*', reason: 'no index is invalid or over 30% (and 1 MiB) bloated' });
    }
    return { kind, scope, steps, skipped };
  }

  const bloat =
    kind === 'vacuum' ? new Map((await estimateTableBloat(sql)).map((b) => [b.oid, b])) : new Map();
  for (const t of tables) {
    const target = `${t.schema}.${t.name}`;
    const deadRatio = t.dead / Math.max(t.live + t.dead, 1);
    if (kind === 'vacuum') {
      const b = bloat.get(t.oid);
      const facts = `${t.dead} dead tuples (${Math.round(deadRatio * 100)}%), last vacuum ${ago(t.lastVacuum)}${
        b ? `, estimated bloat ${Math.round(b.bloatRatio * 100)}%` : ''
      }`;
      // empty space VACUUM has already made reusable is no reason to VACUUM again
      const needed =
        (t.dead >= 1000 && deadRatio >= 0.1) ||
        (b !== undefined && !b.reusable && b.bloatRatio >= 0.3 && b.bloatBytes >= 1_048_576);
      if (scope === 'chosen' || needed) {
        steps.push({
          target,
          statement: `vacuum (analyze) ${qualified(t.schema, t.name)}`,
          reason: `${scope === 'chosen' ? 'requested; ' : ''}${facts}`,
        });
      } else skipped.push({ target, reason: `not needed: ${facts}` });
    } else {
      const facts = `${t.modSinceAnalyze} rows changed since the last analyze (${ago(t.lastAnalyze)}), ${t.live} live`;
      const needed = (t.lastAnalyze === null && t.live > 0) || t.modSinceAnalyze >= 50 + 0.1 * t.live;
      if (scope === 'chosen' || needed) {
        steps.push({
          target,
          statement: `analyze ${qualified(t.schema, t.name)}`,
          reason: `${scope === 'chosen' ? 'requested; ' : ''}${facts}`,
        });
      } else skipped.push({ target, reason: `not needed: ${facts}` });
    }
  }
  return { kind, scope, steps, skipped };
}

/**
 * Runs a plan on one reserved connection whose backend id is published to the job, so a
 * cancel can pg_cancel_backend the statement in flight.
 */
export async function runMaintenance(
  sql: Sql,
  plan: MaintenancePlan,
  ctx: JobContext,
): Promise<{
  kind: MaintenanceKind;
  done: (MaintenanceStep & { durationMs: number })[];
  skipped: MaintenancePlan['skipped'];
}> {
  const conn = await sql.reserve();
  const done: (MaintenanceStep & { durationMs: number })[] = [];
  try {
    const [{ pid } = { pid: 0 }] = await conn<{ pid: number }[]>`select pg_backend_pid() as pid`;
    await conn`set statement_timeout = 0`;
    ctx.setBackendPid(pid);
    for (const [i, step] of plan.steps.entries()) {
      if (ctx.signal.aborted) throw new JobCancelledError();
      ctx.progress((100 * i) / Math.max(plan.steps.length, 1), step.statement);
      const started = performance.now();
      try {
        await conn.unsafe(step.statement);
      } catch (error) {
        if (ctx.signal.aborted || (error as { code?: string }).code === '57014')
          throw new JobCancelledError();
        throw new Error(`${step.statement} failed: ${(error as Error).message}`);
      }
      done.push({ ...step, durationMs: Math.round(performance.now() - started) });
    }
    return { kind: plan.kind, done, skipped: plan.skipped };
  } finally {
    ctx.setBackendPid(null);
    // the connection goes back to the pool: give it its normal statement timeout again
    await conn`reset statement_timeout`.catch(() => {});
    conn.release();
  }
}
