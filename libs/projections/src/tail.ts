import { type Queryable, type Sql, withTransaction } from '@spywatcher/db';
import { type EventType, eventTable } from '@spywatcher/events';
import type { Projection } from './projection.ts';
import { applyStatements } from './statements.ts';

/** A position in one event table's log: rows are ordered by (tx, position). */
export interface Checkpoint {
  tx: string;
  position: string;
}

export const START: Checkpoint = { tx: '0', position: '0' };

/** Where a projection's batches go: the live tables, or the `__next` ones a rebuild fills. */
export interface Target {
  /** Name of the checkpoint rows (the projection's name, or `<name>__next`). */
  checkpoint: string;
  table: (base: string) => string;
}

export const liveTarget = (p: Projection): Target => ({ checkpoint: p.name, table: (t) => t });
export const nextTarget = (p: Projection): Target => ({
  checkpoint: `${p.name}__next`,
  table: (t) => `${t}__next`,
});

/** Events of `type` strictly after `from` and up to `to` (inclusive), as a subquery. */
export const rangeSource = (sql: Queryable, type: EventType, from: Checkpoint, to: Checkpoint) =>
  sql`(select * from ${sql(eventTable(type))} where (tx, position) > (${from.tx}::xid8, ${from.position}::bigint) and (tx, position) <= (${to.tx}::xid8, ${to.position}::bigint))`;

export async function ensureCheckpoints(sql: Queryable, name: string, types: readonly EventType[]) {
  await sql`
    insert into projection_checkpoints (projection, event_type)
    select ${name}, unnest(${types as string[]}::text[])
    on conflict do nothing
  `;
}

export async function readCheckpoint(sql: Queryable, name: string, type: EventType): Promise<Checkpoint> {
  const [row] = await sql<Checkpoint[]>`
    select tx::text as tx, position::text as position from projection_checkpoints
    where projection = ${name} and event_type = ${type}
  `;
  return row ?? START;
}

/**
 * The end of the next batch after `from`: at most `limit` rows, and only rows written by
 * transactions older than the oldest one still in flight (pg_snapshot_xmin). A transaction that
 * started earlier but commits later has a smaller tx, so it is below xmin only once it has
 * finished: its rows cannot appear behind a checkpoint that already moved past them.
 */
export async function nextBatchEnd(
  sql: Queryable,
  type: EventType,
  from: Checkpoint,
  limit: number,
): Promise<{ end: Checkpoint; count: number } | undefined> {
  const rows = await sql<{ tx: string; position: string; n: number }[]>`
    with b as (
      select tx, position from ${sql(eventTable(type))}
      where (tx, position) > (${from.tx}::xid8, ${from.position}::bigint) and tx < pg_snapshot_xmin(pg_current_snapshot())
      order by tx, position limit ${limit}
    )
    select l.tx::text as tx, l.position::text as position, (select count(*) from b)::int as n
    from (select tx, position from b order by tx desc, position desc limit 1) l
  `;
  const row = rows[0];
  return row ? { end: { tx: row.tx, position: row.position }, count: row.n } : undefined;
}

/** Moves a checkpoint from `from` to `to`, failing if someone else moved it meanwhile. */
export async function advanceCheckpoint(
  sql: Queryable,
  name: string,
  type: EventType,
  from: Checkpoint,
  to: Checkpoint,
  applied: number,
): Promise<void> {
  const result = await sql`
    update projection_checkpoints
    set tx = ${to.tx}::xid8, position = ${to.position}::bigint,
        events_applied = events_applied + ${applied}, updated_at = now()
    where projection = ${name} and event_type = ${type}
      and tx = ${from.tx}::xid8 and position = ${from.position}::bigint
  `;
  if (result.count !== 1) {
    throw new Error(`checkpoint of ${name}/${type} moved concurrently; batch rolled back`);
  }
}

/**
 * The transaction-local setting under which generated statements run: they are prepared
 * statements (same text every batch), and their plans depend on the batch's range and values, so
 * each is planned for its parameters rather than with a generic plan after five executions.
 */
export const customPlans = (tx: Queryable) => tx`set_config('plan_cache_mode', 'force_custom_plan', true)`;

/**
 * Applies the next batch of `type` inside the caller's transaction (which has set `customPlans`).
 * Returns the events applied.
 */
export async function applyNextBatch(
  tx: Queryable,
  projection: Projection,
  target: Target,
  type: EventType,
  limit: number,
): Promise<number> {
  const from = await readCheckpoint(tx, target.checkpoint, type);
  const batch = await nextBatchEnd(tx, type, from, limit);
  if (!batch) return 0;
  const src = rangeSource(tx, type, from, batch.end);
  for (const statement of applyStatements(tx, projection, type, src, target.table)) await statement;
  await advanceCheckpoint(tx, target.checkpoint, type, from, batch.end, batch.count);
  return batch.count;
}

/** Advisory lock key shared by everything that writes a projection's live tables. */
export const lockKey = (checkpoint: string) => `projection:${checkpoint}`;

/**
 * One batch in its own transaction: checkpoint and read-model change commit together. When
 * another process holds the projection (a second search instance, or a rebuild swapping tables)
 * this returns `undefined` without waiting.
 */
export async function applyBatchTransaction(
  sql: Sql,
  projection: Projection,
  target: Target,
  type: EventType,
  limit: number,
): Promise<number | undefined> {
  return withTransaction(sql, async (tx) => {
    const [lock] = await tx<{ ok: boolean }[]>`
      select pg_try_advisory_xact_lock(hashtext(${lockKey(target.checkpoint)})) as ok, ${customPlans(tx)}
    `;
    if (!lock?.ok) return undefined;
    return applyNextBatch(tx, projection, target, type, limit);
  });
}

/**
 * True when stored rows lie past the checkpoint that could not be read yet because an older
 * transaction (in any database of the cluster: xids are cluster-wide) is still in flight.
 */
export async function hasBlockedRows(sql: Sql, target: Target, type: EventType): Promise<boolean> {
  // A transaction for customPlans: a generic plan could not tell an empty range from a large one.
  return sql.begin(async (tx) => {
    await tx`select ${customPlans(tx)}`;
    const cp = await readCheckpoint(tx, target.checkpoint, type);
    const [row] = await tx<{ blocked: boolean }[]>`
      select exists (
        select 1 from ${tx(eventTable(type))} where (tx, position) > (${cp.tx}::xid8, ${cp.position}::bigint)
      ) as blocked
    `;
    return row?.blocked ?? false;
  });
}

/**
 * Applies batches of every type until none is left below xmin. Returns the events applied and
 * whether rows remain that an in-flight transaction keeps unreadable (or another runner holds
 * the projection): the caller retries soon rather than waiting for the next poll.
 */
export async function catchUp(
  sql: Sql,
  projection: Projection,
  target: Target,
  limit: number,
  onBatch?: (type: EventType, count: number, seconds: number) => void,
): Promise<{ applied: number; blocked: boolean }> {
  let applied = 0;
  let blocked = false;
  for (const type of projection.types) {
    for (;;) {
      const started = performance.now();
      const n = await applyBatchTransaction(sql, projection, target, type, limit);
      if (n === undefined) {
        blocked = true;
        break;
      }
      applied += n;
      if (n > 0) onBatch?.(type, n, (performance.now() - started) / 1000);
      if (n < limit) {
        if (await hasBlockedRows(sql, target, type)) blocked = true;
        break;
      }
    }
  }
  return { applied, blocked };
}
