import { randomUUID } from 'node:crypto';
import {
  type Fragment,
  inLanes,
  join,
  jsonb,
  type Queryable,
  type Sql,
  withTransaction,
} from '@spywatcher/db';
import { type EventType, eventTable } from '@spywatcher/events';
import { type JobColumns, JobHeartbeat, JobTable } from '@spywatcher/jobs';
import { copyTablePrivileges, grantSelect } from './grants.ts';
import type { Projection } from './projection.ts';
import { createTableStatement, indexStatements, recordVersion } from './schema.ts';
import { bulkStatement, rollupStatement, tableSpecs } from './statements.ts';
import { applyNextBatch, catchUp, customPlans, ensureCheckpoints, lockKey, nextTarget } from './tail.ts';

export interface RebuildProgress {
  phase: string;
  /** Events counted in the time chunks whose tables are all filled, then plus the tail. */
  eventsDone: number;
  /** The planner's estimate while the bulk pass runs; at the end, the counted events. */
  eventsTotal: number;
}

export interface RebuildReport {
  projection: string;
  /** Events folded into the rebuilt model: counted in the bulk pass, plus the tail. */
  events: number;
  tables: number;
  bulkSeconds: number;
  tailEvents: number;
  swapSeconds: number;
  seconds: number;
}

export interface RebuildJob {
  id: string;
  projection: string;
  status: 'running' | 'succeeded' | 'failed';
  phase: string;
  eventsDone: number;
  eventsTotal: number;
  startedAt: string;
  finishedAt: string | null;
  error: string | null;
  report: RebuildReport | null;
}

export class RebuildConflictError extends Error {
  readonly runningJobId: string;
  constructor(projection: string, id: string) {
    super(`a rebuild of "${projection}" is already running (job ${id})`);
    this.runningJobId = id;
  }
}

interface Chunk {
  /** ISO timestamps, UTC midnight: [from, to). */
  from: string;
  to: string;
  /** Estimated events (planner statistics): for sizing chunks only, never reported as done. */
  events: number;
}

/**
 * Splits the span of the projection's event partitions into time ranges of roughly equal
 * estimated size, four per lane so a long one does not leave a lane idle at the end. Ranges
 * start and end on partition bounds (UTC midnights), so no read-model key spans two of them.
 */
export async function planChunks(sql: Queryable, projection: Projection, lanes: number): Promise<Chunk[]> {
  const parts = await sql<{ lower: Date; upper: Date; n: number }[]>`
    select b.lower, b.upper, greatest(c.reltuples, 0)::float8 as n
    from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
    cross join lateral sw_partition_range(c.oid) b
    where i.inhparent = any(${projection.types.map((t) => eventTable(t))}::regclass[])
  `;
  if (parts.length === 0) return [{ from: '-infinity', to: 'infinity', events: 0 }];
  const bounds = [...new Set(parts.flatMap((p) => [p.lower.getTime(), p.upper.getTime()]))].sort(
    (a, b) => a - b,
  );
  // Events per interval between consecutive bounds, spreading each partition over its span.
  const intervals = bounds.slice(0, -1).map((from, i) => {
    const to = bounds[i + 1]!;
    let events = 0;
    for (const p of parts) {
      const lo = Math.max(from, p.lower.getTime());
      const hi = Math.min(to, p.upper.getTime());
      if (hi > lo) events += (p.n * (hi - lo)) / (p.upper.getTime() - p.lower.getTime());
    }
    return { from, to, events };
  });
  const total = intervals.reduce((n, x) => n + x.events, 0);
  const target = total / (lanes * 4);
  const chunks: Chunk[] = [];
  let open: { from: number; to: number; events: number } | undefined;
  for (const x of intervals) {
    open = open ? { from: open.from, to: x.to, events: open.events + x.events } : { ...x };
    if (open.events >= target) {
      chunks.push(toChunk(open));
      open = undefined;
    }
  }
  if (open) chunks.push(toChunk(open));
  // The outer ends reach past the partitions: a partition created meanwhile holds rows above
  // the horizon only, which the tail applies; nothing below it may fall outside every chunk.
  chunks[0]!.from = '-infinity';
  chunks[chunks.length - 1]!.to = 'infinity';
  return chunks;
}

const toChunk = (x: { from: number; to: number; events: number }): Chunk => ({
  from: new Date(x.from).toISOString(),
  to: new Date(x.to).toISOString(),
  events: Math.round(x.events),
});

/**
 * A chunk bound as a timestamptz: a Date parameter (the driver types it timestamptz) or the
 * constant of an open end. Not a text parameter cast in the query: that cast (text -> timestamptz
 * is stable, not immutable) was evaluated for every row scanned (~2% of the bulk pass parsing
 * dates), and the driver cannot send '-infinity' as a timestamptz parameter.
 */
function timeBound(sql: Queryable, bound: string): Fragment {
  if (bound === '-infinity') return sql`'-infinity'::timestamptz`;
  if (bound === 'infinity') return sql`'infinity'::timestamptz`;
  return sql`${new Date(bound)}`;
}

/**
 * Session settings for the bulk pass (transaction-local): no JIT (it compiles these statements
 * for longer than it saves on them) and a bigger maintenance_work_mem for the index builds.
 * work_mem stays at the server's setting (4 MB by default) unless the table asks for more
 * (`TableSpec.bulkWorkMem`): each statement groups one time chunk, and its groupings spill in
 * sorted batches that reuse the same memory. With 1 GB for every table the planner sized every
 * hash table from its estimate of the groups (ten times too many for the per-source groupings),
 * and on a VM whose page faults are expensive zeroing and faulting in that memory cost more than
 * the spill saves (~96 backend CPU-s for the five projections at 5,000,000 events against ~86
 * with 4 MB; 1.65M page faults against 0.4M). Only the heatmap's grouping sets gain from more.
 */
async function bulkSettings(tx: Queryable, workMem?: string): Promise<void> {
  // One round trip: a null work_mem keeps the server's setting.
  await tx`select set_config('maintenance_work_mem', '256MB', true), set_config('jit', 'off', true),
    set_config('work_mem', coalesce(${workMem ?? null}::text, current_setting('work_mem')), true),
    ${customPlans(tx)}`;
}

export interface RebuildOptions {
  batchSize?: number;
  /**
   * Bulk-pass statements run at once, each on its own connection (default 2). The grouping is
   * CPU-bound in one backend per statement, and PostgreSQL does not run INSERT … SELECT in
   * parallel itself, so this is how a rebuild uses more than one core.
   */
  concurrency?: number;
  onProgress?: (p: RebuildProgress) => void | Promise<void>;
}

/**
 * Rebuilds a projection without downtime:
 * 1. creates empty `<table>__next` tables of the declared shape, without indexes (the live ones
 *    keep serving, whatever their shape);
 * 2. bulk pass: per table and time chunk, one INSERT of the grouped UNION ALL of every event
 *    type it reads, restricted to transactions below the xmin taken at the start (a fixed, fully
 *    committed prefix of the log), `concurrency` at a time; then fills the weekly roll-ups from
 *    the daily tables and builds the indexes; the `__next` checkpoints are the last row of that
 *    prefix in each event table;
 * 3. tails the log into `__next` in batches until caught up;
 * 4. in one transaction holding the projection's lock (the live runner skips meanwhile): applies
 *    the last batches, renames live → `__old`, `__next` → live, drops `__old` and moves the
 *    checkpoints and the declared version. Readers see the old tables until that commit and the
 *    new ones after it.
 */
export async function rebuildProjection(
  sql: Sql,
  projection: Projection,
  options: RebuildOptions = {},
): Promise<RebuildReport> {
  // Two rebuilds of one projection share its `__next` tables and checkpoints: one drops or
  // resets what the other built and the tail is applied on top of a bulk pass with another
  // horizon, counting events twice or not at all. The job row cannot prevent that on its own
  // (a job whose bulk pass outlasts the heartbeat is taken over while it still runs), so the
  // whole rebuild holds a session lock; a process that dies takes its lock with it.
  const guard = await sql.reserve();
  const key = `projection-rebuild:${projection.name}`;
  try {
    const [lock] = await guard<{ ok: boolean }[]>`select pg_try_advisory_lock(hashtext(${key})) as ok`;
    if (!lock?.ok) throw new RebuildConflictError(projection.name, 'unknown');
    try {
      return await buildAndSwap(sql, projection, options);
    } finally {
      await guard`select pg_advisory_unlock(hashtext(${key}))`;
    }
  } finally {
    guard.release();
  }
}

/**
 * Rebuilds several projections, `atOnce` of them side by side (largest first). A single rebuild
 * leaves a core idle in its serial steps (a roll-up, the index of a one-table projection, the
 * last chunk); a second projection's rebuild fills it.
 */
export async function rebuildProjections(
  sql: Sql,
  projections: readonly Projection[],
  options: RebuildOptions & { atOnce?: number } = {},
): Promise<RebuildReport[]> {
  const reports = new Map<Projection, RebuildReport>();
  await inLanes(await largestFirst(sql, projections), options.atOnce ?? 2, async (p) => {
    reports.set(p, await rebuildProjection(sql, p, options));
  });
  return projections.map((p) => reports.get(p)!);
}

/** Projections ordered by estimated work (events read × tables filled), largest first. */
export async function largestFirst(
  sql: Queryable,
  projections: readonly Projection[],
): Promise<Projection[]> {
  const sizes = new Map<Projection, number>();
  for (const p of projections) {
    const chunks = await planChunks(sql, p, 1);
    sizes.set(p, chunks.reduce((n, c) => n + c.events, 0) * p.tables.length);
  }
  return [...projections].sort((a, b) => sizes.get(b)! - sizes.get(a)!);
}

async function buildAndSwap(
  sql: Sql,
  projection: Projection,
  options: RebuildOptions,
): Promise<RebuildReport> {
  const started = performance.now();
  const batchSize = options.batchSize ?? 20_000;
  const target = nextTarget(projection);
  const progress = async (p: RebuildProgress) => options.onProgress?.(p);
  const specs = tableSpecs(projection);
  const tables = specs.map((spec) => spec.name);

  // The new tables have the declared shape, whatever the live ones have (a schema change to a
  // read model is this rebuild).
  await withTransaction(sql, async (tx) => {
    for (const spec of specs) {
      await tx`drop table if exists ${tx(target.table(spec.name))}`;
      await createTableStatement(tx, spec, target.table(spec.name));
    }
    await tx`delete from projection_checkpoints where projection = ${target.checkpoint}`;
    await ensureCheckpoints(tx, target.checkpoint, projection.types);
  });

  const [snap] = await sql<{ xmin: string }[]>`select pg_snapshot_xmin(pg_current_snapshot())::text as xmin`;
  const xmin = snap!.xmin;
  const lanes = Math.max(1, options.concurrency ?? 2);
  const chunks = await planChunks(sql, projection, lanes);
  let eventsTotal = chunks.reduce((n, c) => n + c.events, 0);
  let eventsDone = 0;
  // Counted, per chunk and event type, in the first table's transaction of each chunk.
  const counted = new Map<EventType, number>(projection.types.map((t) => [t, 0]));
  const chunkEvents = chunks.map(() => 0);
  const tablesLeft = chunks.map(() => projection.tables.length);
  const bulkStarted = performance.now();
  // Every read-model key holds the UTC day of its events, so time ranges that meet at midnight
  // fill disjoint keys: the chunks are independent INSERTs, run side by side, and each groups
  // fewer rows (a smaller hash table) than one statement over the whole log would.
  const work = projection.tables.flatMap((spec, first) =>
    chunks.map((chunk, index) => ({ spec, chunk, index, count: first === 0 })),
  );
  let finished = 0;
  await progress({ phase: `bulk 0/${work.length} chunks`, eventsDone, eventsTotal });
  await inLanes(work, lanes, async ({ spec, chunk, index, count }) => {
    await sql.begin(async (tx) => {
      const source = (type: EventType) =>
        tx`(select * from ${tx(eventTable(type))} where tx < ${xmin}::xid8 and occurred_at >= ${timeBound(tx, chunk.from)} and occurred_at < ${timeBound(tx, chunk.to)})`;
      await bulkSettings(tx, spec.bulkWorkMem);
      await bulkStatement(tx, spec, source, target.table(spec.name));
      if (count) {
        for (const [type, n] of await countEvents(tx, projection.types, source)) {
          counted.set(type, counted.get(type)! + n);
          chunkEvents[index]! += n;
        }
      }
    });
    finished++;
    if (--tablesLeft[index]! === 0) eventsDone += chunkEvents[index]!;
    eventsTotal = Math.max(eventsTotal, eventsDone);
    await progress({ phase: `bulk ${finished}/${work.length} chunks`, eventsDone, eventsTotal });
  });
  // Weekly roll-ups from their finished daily tables.
  await inLanes(
    projection.tables.filter((spec) => spec.weekly),
    lanes,
    (spec) =>
      sql.begin(async (tx) => {
        await bulkSettings(tx);
        await rollupStatement(tx, spec, target.table(spec.name), target.table(spec.weekly!));
      }),
  );
  await progress({ phase: 'indexing', eventsDone, eventsTotal });
  // Indexes of one table may be built side by side (CREATE INDEX takes a share lock).
  const indexes = specs.flatMap((spec) => indexStatements(sql, spec, target.table(spec.name), '__next'));
  await inLanes(indexes, lanes, (statements) =>
    sql.begin(async (tx) => {
      await bulkSettings(tx);
      // Built with the pool for the lanes; each runs in this transaction.
      for (const statement of statements) await tx`${statement}`;
    }),
  );
  // Fresh tables have no statistics, and no hint bits or visibility map: the endpoints' plans need
  // statistics from the first query on, and without VACUUM the first reads after the swap set
  // every row's hint bits (writing the pages again) and no index-only scan is possible until
  // autovacuum comes by (if it runs at all). Right after a rebuild at 5,000,000 events, lurkers'
  // p95 was 97 ms with ANALYZE alone and 70 ms with VACUUM (ANALYZE); it adds ~1-2 s to the
  // rebuild (the rest of the first-queries cost is the new pages entering shared buffers).
  await inLanes(tables, lanes, async (table) => {
    // A simple query: VACUUM runs outside a transaction block, and there is nothing to prepare.
    await sql`vacuum (analyze) ${sql(target.table(table))}`.simple();
  });
  // The horizon per event type: its last row below xmin (planned for this xmin: customPlans).
  await sql.begin(async (tx) => {
    await tx`select ${customPlans(tx)}`;
    for (const type of projection.types) {
      // Qualified: an unqualified `order by tx` would sort the text output columns, where
      // '994' > '2240', and the tail would apply again rows the bulk pass already counted.
      const [last] = await tx<{ tx: string; position: string }[]>`
        select e.tx::text as tx, e.position::text as position from ${tx(eventTable(type))} e
        where e.tx < ${xmin}::xid8 order by e.tx desc, e.position desc limit 1
      `;
      // events_applied starts at the counted bulk events, so it is not reset by the swap.
      await tx`
        update projection_checkpoints set tx = coalesce(${last?.tx ?? null}::xid8, tx),
          position = coalesce(${last?.position ?? null}::bigint, position),
          events_applied = ${counted.get(type)!}, updated_at = now()
        where projection = ${target.checkpoint} and event_type = ${type}
      `;
    }
  });
  const bulkSeconds = (performance.now() - bulkStarted) / 1000;

  await progress({ phase: 'catching up', eventsDone, eventsTotal });
  let tailEvents = (await catchUp(sql, projection, target, batchSize)).applied;

  await progress({ phase: 'swapping', eventsDone, eventsTotal });
  const swapStarted = performance.now();
  await withTransaction(sql, async (tx) => {
    // Blocks the live runner's next batch (it uses a try-lock and simply skips) until commit.
    await tx`select pg_advisory_xact_lock(hashtext(${lockKey(projection.name)})), ${customPlans(tx)}`;
    for (const type of projection.types) {
      for (;;) {
        const n = await applyNextBatch(tx, projection, target, type, batchSize);
        tailEvents += n;
        if (n < batchSize) break;
      }
    }
    for (const table of tables) {
      // A table the previous version did not have has no live copy to replace.
      const [live] = await tx<{ exists: boolean }[]>`select to_regclass(${table}) is not null as exists`;
      if (live?.exists) {
        await copyTablePrivileges(tx, table, target.table(table));
        await tx`alter table ${tx(table)} rename to ${tx(`${table}__old`)}`;
      }
      await tx`alter table ${tx(target.table(table))} rename to ${tx(table)}`;
      if (live?.exists) await tx`drop table ${tx(`${table}__old`)}`;
      else await grantSelect(tx, table, projection.readers ?? []);
      // Index (and primary-key) names were made for the __next table; give them their usual names.
      const indexes = await tx<{ name: string }[]>`
        select indexname as name from pg_indexes
        where schemaname = current_schema() and tablename = ${table} and strpos(indexname, '__next') > 0
      `;
      for (const { name } of indexes) {
        await tx`alter index ${tx(name)} rename to ${tx(name.replace('__next', ''))}`;
      }
    }
    await tx`delete from projection_checkpoints where projection = ${projection.name}`;
    await tx`update projection_checkpoints set projection = ${projection.name} where projection = ${target.checkpoint}`;
    await recordVersion(tx, projection);
  });
  const swapSeconds = (performance.now() - swapStarted) / 1000;
  eventsDone = [...counted.values()].reduce((a, n) => a + n, 0) + tailEvents;
  await progress({ phase: 'done', eventsDone, eventsTotal: eventsDone });
  return {
    projection: projection.name,
    events: eventsDone,
    tables: tables.length,
    bulkSeconds: round(bulkSeconds),
    tailEvents,
    swapSeconds: round(swapSeconds),
    seconds: round((performance.now() - started) / 1000),
  };
}

const round = (n: number) => Math.round(n * 1000) / 1000;

/** Exact event counts of a bulk chunk per type, from the same rows its INSERTs read. */
async function countEvents(
  tx: Queryable,
  types: readonly EventType[],
  source: (type: EventType) => Fragment,
): Promise<[EventType, number][]> {
  const counts = types.map((type, i) => tx`(select count(*) from ${source(type)} s)::text as ${tx(`c${i}`)}`);
  const [row] = await tx<Record<string, string>[]>`select ${join(tx, counts)}`;
  return types.map((type, i) => [type, Number(row![`c${i}`])]);
}

interface JobRow {
  id: string;
  projection: string;
  status: RebuildJob['status'];
  phase: string;
  events_done: string;
  events_total: string;
  started_at: Date;
  finished_at: Date | null;
  error: string | null;
  report: RebuildReport | null;
}

const toJob = (r: JobRow): RebuildJob => ({
  id: r.id,
  projection: r.projection,
  status: r.status,
  phase: r.phase,
  eventsDone: Number(r.events_done),
  eventsTotal: Number(r.events_total),
  startedAt: r.started_at.toISOString(),
  finishedAt: r.finished_at?.toISOString() ?? null,
  error: r.error,
  report: r.report,
});

export async function getRebuildJob(sql: Sql, id: string): Promise<RebuildJob | undefined> {
  const [row] = await sql<JobRow[]>`select * from projection_rebuilds where id = ${id}`;
  return row ? toJob(row) : undefined;
}

/** Rebuild jobs as rows of projection_rebuilds, with the job lifecycle of libs/jobs. */
function rebuildJobs(sql: Sql): JobTable {
  return new JobTable({ sql, table: 'projection_rebuilds', label: 'rebuild' });
}

export interface RebuildJobOptions extends Omit<RebuildOptions, 'onProgress'> {
  onProgress?: (p: RebuildProgress) => void;
  /** How often the running rebuild renews its heartbeat (default 5 s). */
  heartbeatMs?: number;
  /** A rebuild whose heartbeat is older than this is failed as abandoned (default 60 s). */
  abandonAfterMs?: number;
}

/**
 * Records a rebuild job and runs it in the background of this process. Returns the job and a
 * promise of its end (the CLI awaits it; the HTTP API answers 202 right away). While it runs its
 * heartbeat is renewed; a rebuild whose process died is failed as abandoned by the next start.
 */
export async function startRebuildJob(
  sql: Sql,
  projection: Projection,
  options: RebuildJobOptions = {},
): Promise<{ job: RebuildJob; done: Promise<RebuildJob> }> {
  const id = randomUUID();
  const jobs = rebuildJobs(sql);
  const heartbeat = new JobHeartbeat({
    jobs,
    running: () => [id],
    everyMs: options.heartbeatMs,
    abandonAfterMs: options.abandonAfterMs,
  });
  // a rebuild whose process died must not block this one
  await heartbeat.sweep();
  const row = await jobs
    .create<JobRow & JobColumns>({ id, projection: projection.name, status: 'running', phase: 'starting' })
    .catch(async (error) => {
      if ((error as { code?: string }).code !== '23505') throw error;
      const [running] = await sql<{ id: string }[]>`
        select id from projection_rebuilds where projection = ${projection.name} and status = 'running'
      `;
      throw new RebuildConflictError(projection.name, running?.id ?? 'unknown');
    });
  heartbeat.start();

  const done = (async () => {
    try {
      const report = await rebuildProjection(sql, projection, {
        batchSize: options.batchSize,
        concurrency: options.concurrency,
        onProgress: async (p) => {
          options.onProgress?.(p);
          await jobs.progress(id, { phase: p.phase, events_done: p.eventsDone, events_total: p.eventsTotal });
        },
      });
      await jobs.finish(id, { status: 'succeeded', set: { phase: 'done', report: jsonb(sql, report) } });
    } catch (error) {
      await jobs.finish(id, { status: 'failed', error: (error as Error).message }).catch(() => {});
    } finally {
      await heartbeat.stop();
    }
    return (await getRebuildJob(sql, id))!;
  })();
  return { job: toJob(row), done };
}
