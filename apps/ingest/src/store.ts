import {
  copyRows,
  ensurePartitions,
  isMissingPartitionError,
  type PartitionCache,
  type Queryable,
  type Sql,
  withTransaction,
} from '@spywatcher/db';
import { EVENT_COLUMNS, type EventType, eventRowGroups, type SpywatcherEvent } from '@spywatcher/events';

export interface StoredGroup {
  type: EventType;
  /** Ids newly stored by this call, in append order. */
  ids: string[];
  /** Highest `position` among them, as a string (bigint). */
  maxPosition: string;
}

/** Where an id already stored lives (the registry's entry). */
export interface StoredAs {
  type: EventType;
  occurred_at: string;
}

/** What became of one event of a batch. */
export type EventOutcome =
  | { status: 'stored' }
  /** The same event (same id and content) was stored before, or earlier in this batch. */
  | { status: 'duplicate' }
  /** Its id was stored before with other content: nothing was written. */
  | { status: 'conflict'; storedAs: StoredAs }
  /** PostgreSQL refused the row (a data error); the rest of the batch was stored without it. */
  | { status: 'refused'; reason: string };

export interface StoreOutcome {
  /** New rows per type, for the `stored.<type>` notifications. */
  stored: StoredGroup[];
  /** One outcome per event, in the order given. */
  results: EventOutcome[];
}

/** Attempts of a batch that raced another writer storing one of its ids at the same time. */
const RACE_ATTEMPTS = 5;

export interface StoreOptions {
  /**
   * Some ids may be stored already (redelivered messages): look the batch's ids up before
   * appending. Otherwise the append is tried first and the look-up made only when the
   * registry refuses an id, which spares the common batch of new events one statement.
   */
  mayBeKnown?: boolean;
}

/**
 * Appends a batch of valid events. Ids already in the registry (`event_ids`, migration 0100)
 * are answered `duplicate` or `conflict` after comparing the content with the stored row; the
 * others are COPYed into their tables in ONE transaction, whose insert trigger registers them.
 * A repeated id within the batch is stored once and its repeats compared with it after commit.
 * Unless `mayBeKnown`, the first attempt COPYs without looking up: when an id is registered
 * already the trigger's unique violation rolls it back and the batch is stored again with the
 * look-up.
 *
 * Throws when the database is unavailable (nothing of the batch is stored then) or refuses the
 * data (isDataError; storeIsolating narrows that down to the events at fault).
 */
export async function storeEvents(
  sql: Sql,
  cache: PartitionCache,
  events: readonly SpywatcherEvent[],
  options: StoreOptions = {},
): Promise<StoreOutcome> {
  const first = new Map<string, number>();
  const repeats: number[] = [];
  events.forEach((e, i) => {
    if (first.has(e.id)) repeats.push(i);
    else first.set(e.id, i);
  });
  const unique = [...first.values()].map((i) => events[i]!);
  for (let attempt = 1; ; attempt++) {
    try {
      await ensureEventPartitions(sql, cache, unique);
      const lookUp = options.mayBeKnown === true || attempt > 1;
      const { stored, known } = await withTransaction(sql, (tx) => appendNew(tx, unique, lookUp));
      const results: EventOutcome[] = new Array(events.length);
      for (const [id, i] of first) results[i] = known.get(id) ?? { status: 'stored' };
      if (repeats.length > 0) {
        const later = await compareWithStored(
          sql,
          repeats.map((i) => events[i]!),
        );
        repeats.forEach((i, k) => {
          results[i] = later[k]!;
        });
      }
      return { stored, results };
    } catch (error) {
      // A partition dropped by retention after we cached it: forget and create again.
      if (attempt === 1 && isMissingPartitionError(error)) {
        cache.clear();
        continue;
      }
      // An id registered already (the append without look-up), or stored by another
      // transaction between our look-up and our insert: looking (again) finds it and answers it.
      if (attempt < RACE_ATTEMPTS && isUniqueViolation(error)) continue;
      throw error;
    }
  }
}

const DAY_MS = 86_400_000;

/** The UTC day of a time: read from its text when it is in UTC (`…Z`, the common form), else parsed. */
function utcDay(occurredAt: string): string | number {
  return occurredAt.endsWith('Z') ? occurredAt.slice(0, 10) : Math.floor(Date.parse(occurredAt) / DAY_MS);
}

/** Partitions for the batch: one time per type and UTC day is enough (a partition holds whole days). */
async function ensureEventPartitions(sql: Sql, cache: PartitionCache, events: readonly SpywatcherEvent[]) {
  const byType = new Map<EventType, Map<string | number, Date>>();
  for (const e of events) {
    let days = byType.get(e.type);
    if (!days) {
      days = new Map();
      byType.set(e.type, days);
    }
    const day = utcDay(e.occurred_at);
    if (!days.has(day)) days.set(day, new Date(e.occurred_at));
  }
  for (const [type, days] of byType) await ensurePartitions(sql, type, days.values(), cache);
}

/** In one transaction: look the ids up (when asked), COPY the new events, read back their positions. */
async function appendNew(tx: Queryable, events: readonly SpywatcherEvent[], lookUp: boolean) {
  const registered = lookUp
    ? await tx<{ id: string }[]>`
        select id::text as id from event_ids where id = any(${events.map((e) => e.id)}::uuid[])
      `
    : [];
  const taken = new Set(registered.map((r) => r.id));
  const known = new Map<string, EventOutcome>();
  if (taken.size > 0) {
    const seen = events.filter((e) => taken.has(e.id));
    const outcomes = await compareWithStored(tx, seen);
    seen.forEach((e, k) => {
      known.set(e.id, outcomes[k]!);
    });
  }
  const stored: StoredGroup[] = [];
  for (const [type, g] of eventRowGroups(events.filter((e) => !taken.has(e.id)))) {
    // COPY straight into the partitioned table: the cheapest way in, and every id is new.
    await copyRows(tx, g.table, g.columns, g.rows, g.rows.length);
    const [p] = await tx<{ max: string }[]>`select currval('event_position_seq')::text as max`;
    stored.push({ type, ids: g.events.map((e) => e.id), maxPosition: p!.max });
  }
  return { stored, known };
}

/**
 * Compares events whose id is registered with what was stored under it: the same type, time and
 * column values make a `duplicate`, anything else a `conflict`. An event whose row retention has
 * since dropped is a duplicate when type and time match (its content can no longer be compared).
 */
export async function compareWithStored(
  sql: Queryable,
  events: readonly SpywatcherEvent[],
): Promise<EventOutcome[]> {
  const outcomes = new Map<SpywatcherEvent, EventOutcome>();
  for (const [type, g] of eventRowGroups(events)) {
    const content = EVENT_COLUMNS[type].filter((c) => c !== 'id' && c !== 'occurred_at');
    const cols = (alias: string) => content.map((c) => `${alias}."${c}"`).join(', ');
    const records = g.rows.map((row) => Object.fromEntries(EVENT_COLUMNS[type].map((c, i) => [c, row[i]])));
    const rows = await sql.unsafe<
      { n: string; type: EventType; occurred_at: Date; same_time: boolean; same_content: boolean | null }[]
    >(
      `select i.ordinality::int as n, e.type, e.occurred_at, e.occurred_at = i.occurred_at as same_time,
              (select (${cols('s')}) is not distinct from (${cols('i')})
                 from "${g.table}" s where s.id = i.id and s.occurred_at = i.occurred_at) as same_content
         from json_populate_recordset(null::"${g.table}", $1::text::json) with ordinality i
         join event_ids e on e.id = i.id`,
      [JSON.stringify(records)],
    );
    if (rows.length !== g.events.length) throw new Error('an event compared with the log is not registered');
    for (const r of rows) {
      const duplicate = r.type === type && r.same_time && r.same_content !== false;
      outcomes.set(
        g.events[Number(r.n) - 1]!,
        duplicate
          ? { status: 'duplicate' }
          : { status: 'conflict', storedAs: { type: r.type, occurred_at: r.occurred_at.toISOString() } },
      );
    }
  }
  return events.map((e) => outcomes.get(e)!);
}

/** The sentence answered (HTTP) or dead-lettered (NATS) for an id stored with other content. */
export function conflictReason(id: string, storedAs: StoredAs): string {
  return `id ${id} is already stored as a ${storedAs.type} event of ${storedAs.occurred_at} with other content; an id names one event forever, so send a new id`;
}

/** Stores a batch; when PostgreSQL refuses some rows, halves it until those rows stand alone. */
export async function storeIsolating(
  sql: Sql,
  cache: PartitionCache,
  events: readonly SpywatcherEvent[],
  options: StoreOptions = {},
): Promise<StoreOutcome> {
  try {
    return await storeEvents(sql, cache, events, options);
  } catch (error) {
    if (!isDataError(error)) throw error;
    if (events.length === 1) {
      return {
        stored: [],
        results: [{ status: 'refused', reason: `refused by PostgreSQL: ${(error as Error).message}` }],
      };
    }
    const half = Math.ceil(events.length / 2);
    const a = await storeIsolating(sql, cache, events.slice(0, half), options);
    const b = await storeIsolating(sql, cache, events.slice(half), options);
    return { stored: [...a.stored, ...b.stored], results: [...a.results, ...b.results] };
  }
}

function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '23505';
}

/**
 * True for errors caused by the data of the batch (PostgreSQL classes 22 data exception and
 * 23 integrity violation): retrying the same rows cannot help, so they are isolated instead.
 * Anything else (connection refused, server shutting down, database not accepting
 * connections, timeouts) is transient.
 */
export function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23)/.test(code) && !isMissingPartitionError(error);
}
