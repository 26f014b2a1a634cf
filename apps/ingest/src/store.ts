import {
  type EventType,
  ensurePartitions,
  isMissingPartitionError,
  type PartitionCache,
  type Queryable,
  type Sql,
  withTransaction,
} from '@spywatcher/db';
import { eventRowGroups, type SpywatcherEvent } from '@spywatcher/events';

export interface StoredGroup {
  type: EventType;
  /** Ids newly stored by this call, in append order. */
  ids: string[];
  /** Highest `position` among them, as a string (bigint). */
  maxPosition: string;
}

export interface StoreOutcome {
  stored: StoredGroup[];
  storedIds: Set<string>;
  /** Ids that were already in the log (or repeated within the batch). */
  duplicateIds: Set<string>;
}

/**
 * Appends a batch of valid events: partitions first (with the pool, outside the inserting
 * transaction), then every table of the batch in ONE transaction with ON CONFLICT DO NOTHING,
 * so the batch is all stored or not at all, and a repeated id is reported, not doubled.
 */
export async function storeEvents(
  sql: Sql,
  cache: PartitionCache,
  events: readonly SpywatcherEvent[],
): Promise<StoreOutcome> {
  const duplicateIds = new Set<string>();
  const unique = new Map<string, SpywatcherEvent>();
  for (const e of events) {
    if (unique.has(e.id)) duplicateIds.add(e.id);
    else unique.set(e.id, e);
  }
  const groups = eventRowGroups(unique.values());

  for (let attempt = 1; ; attempt++) {
    try {
      for (const [type, g] of groups) {
        await ensurePartitions(
          sql,
          type,
          g.events.map((e) => new Date(e.occurred_at)),
          cache,
        );
      }
      const stored = await withTransaction(sql, async (tx) => {
        const out: StoredGroup[] = [];
        for (const [type, g] of groups) {
          const inserted = await insertRows(tx, g.table, g.columns, g.rows);
          if (inserted.length === 0) continue;
          let max = BigInt(inserted[0]!.position);
          for (const r of inserted) if (BigInt(r.position) > max) max = BigInt(r.position);
          out.push({ type, ids: inserted.map((r) => r.id), maxPosition: max.toString() });
        }
        return out;
      });
      const storedIds = new Set<string>();
      for (const g of stored) for (const id of g.ids) storedIds.add(id);
      for (const id of unique.keys()) if (!storedIds.has(id)) duplicateIds.add(id);
      return { stored, storedIds, duplicateIds };
    } catch (error) {
      // A partition dropped by retention after we cached it: forget and create again, once.
      if (attempt === 1 && isMissingPartitionError(error)) {
        cache.clear();
        continue;
      }
      throw error;
    }
  }
}

/**
 * Inserts rows (values in `columns` order, as from `eventRow`) with ON CONFLICT DO NOTHING and
 * returns id and position of the rows that were new. One statement per table: the rows travel
 * as one JSON parameter that PostgreSQL turns into the table's own row type, so arrays, jsonb
 * and timestamps convert exactly as the table defines them. This is used instead of
 * `appendRows` (COPY into a staging table) on the hot path because it is one statement per table
 * instead of three (temp table, COPY, insert) and returns `position` as well as `id`. (It was
 * chosen when a COPY round trip took ~40 ms; `createSql` now sets TCP_NODELAY, which fixed that.)
 * `table` and `columns` come from our own code, never from input.
 */
export async function insertRows(
  tx: Queryable,
  table: string,
  columns: readonly string[],
  rows: readonly (readonly unknown[])[],
): Promise<{ id: string; position: string }[]> {
  const records = rows.map((row) => {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < columns.length; i++) o[columns[i]!] = row[i];
    return o;
  });
  const cols = columns.map((c) => `"${c}"`).join(', ');
  return tx.unsafe<{ id: string; position: string }[]>(
    `insert into "${table}" (${cols})
     select ${cols} from json_populate_recordset(null::"${table}", $1::text::json)
     on conflict do nothing
     returning id::text as id, position::text as position`,
    [JSON.stringify(records)],
  );
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
