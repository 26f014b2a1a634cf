import {
  appendRows,
  type EventType,
  ensurePartitions,
  isMissingPartitionError,
  type PartitionCache,
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
          const ids = await appendRows(tx, {
            table: g.table,
            columns: g.columns,
            rows: g.rows,
            returning: 'id',
          });
          if (ids.length === 0) continue;
          // Rows of this transaction carry its xid: the (tx, position) tail index answers this.
          const [row] = await tx.unsafe<{ max: string }[]>(
            `select max(position)::text as max from ${g.table} where tx = pg_current_xact_id()`,
          );
          out.push({ type, ids, maxPosition: row!.max });
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
 * True for errors caused by the data of the batch (PostgreSQL classes 22 data exception and
 * 23 integrity violation): retrying the same rows cannot help, so they are isolated instead.
 * Anything else (connection refused, server shutting down, database not accepting
 * connections, timeouts) is transient.
 */
export function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23)/.test(code) && !isMissingPartitionError(error);
}
