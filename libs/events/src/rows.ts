import { type EventType, eventTable } from './event-types.ts';
import type { EventByType, SpywatcherEvent } from './schemas.ts';

/**
 * Mapping from a valid event to a row of its table, shared by every writer (ingest, the
 * SQLite importer, fixtures) so columns are listed once. Use with `appendRows`:
 *   appendRows(tx, { table: eventTable(type), columns: EVENT_COLUMNS[type], rows, returning: 'id' })
 * `recorded_at`, `tx` and `position` are left to their defaults.
 */
/** The values an event row holds: what `appendRows`/`copyRows` accept for these columns. */
export type EventRowValue = string | number | boolean | null | readonly string[] | Record<string, unknown>;

const COMMON = ['id', 'occurred_at', 'metadata'] as const;

export const EVENT_COLUMNS = {
  presence: [...COMMON, 'user_id', 'username', 'guild_id', 'clients', 'status'],
  typing: [...COMMON, 'user_id', 'username', 'channel_id', 'channel_name', 'guild_id'],
  message: [
    ...COMMON,
    'message_id',
    'user_id',
    'username',
    'channel_id',
    'channel_name',
    'guild_id',
    'content',
    'attachment_count',
    'embed_count',
  ],
  join: [...COMMON, 'user_id', 'username', 'guild_id', 'account_age_days'],
  deleted_message: [...COMMON, 'message_id', 'user_id', 'username', 'channel_id', 'channel_name', 'guild_id'],
  reaction_time: [
    ...COMMON,
    'observer_id',
    'observer_name',
    'actor_id',
    'actor_name',
    'channel_id',
    'guild_id',
    'delta_ms',
  ],
  role_change: [...COMMON, 'user_id', 'username', 'guild_id', 'added_roles', 'removed_roles'],
} as const satisfies Record<EventType, readonly string[]>;

type RowOf = { [T in EventType]: (event: EventByType[T]) => EventRowValue[] };

const ROW: RowOf = {
  presence: ({ data: d }) => [d.user_id, d.username, d.guild_id ?? null, d.clients, d.status ?? null],
  typing: ({ data: d }) => [d.user_id, d.username, d.channel_id, d.channel_name, d.guild_id],
  message: ({ data: d }) => [
    d.message_id ?? null,
    d.user_id,
    d.username,
    d.channel_id,
    d.channel_name,
    d.guild_id,
    d.content,
    d.attachment_count ?? 0,
    d.embed_count ?? 0,
  ],
  join: ({ data: d }) => [d.user_id, d.username, d.guild_id, d.account_age_days],
  deleted_message: ({ data: d }) => [
    d.message_id ?? null,
    d.user_id,
    d.username,
    d.channel_id,
    d.channel_name,
    d.guild_id,
  ],
  reaction_time: ({ data: d }) => [
    d.observer_id,
    d.observer_name,
    d.actor_id,
    d.actor_name,
    d.channel_id,
    d.guild_id,
    d.delta_ms,
  ],
  role_change: ({ data: d }) => [d.user_id, d.username, d.guild_id, d.added_roles, d.removed_roles],
};

/** Column values of a (validated) event, in `EVENT_COLUMNS[event.type]` order. */
export function eventRow(event: SpywatcherEvent): EventRowValue[] {
  const data = (ROW[event.type] as (e: SpywatcherEvent) => EventRowValue[])(event);
  return [event.id, event.occurred_at, event.metadata ?? {}, ...data];
}

/** Events grouped by type, each group ready for `appendRows`. */
export function eventRowGroups(events: Iterable<SpywatcherEvent>) {
  const groups = new Map<
    EventType,
    { table: string; columns: readonly string[]; rows: EventRowValue[][]; events: SpywatcherEvent[] }
  >();
  for (const event of events) {
    let g = groups.get(event.type);
    if (!g) {
      g = { table: eventTable(event.type), columns: EVENT_COLUMNS[event.type], rows: [], events: [] };
      groups.set(event.type, g);
    }
    g.rows.push(eventRow(event));
    g.events.push(event);
  }
  return groups;
}

/** Converts a table row back to an event (for GET and for readers that want the event shape). */
export function rowToEvent(type: EventType, row: Record<string, unknown>): SpywatcherEvent {
  const data: Record<string, unknown> = {};
  for (const column of EVENT_COLUMNS[type].slice(COMMON.length)) {
    const value = row[column];
    if (value === null || value === undefined) continue;
    data[column] = value;
  }
  const occurred = row.occurred_at;
  return {
    id: String(row.id),
    type,
    occurred_at: occurred instanceof Date ? occurred.toISOString() : String(occurred),
    metadata: (row.metadata as Record<string, unknown>) ?? {},
    data,
  } as SpywatcherEvent;
}
