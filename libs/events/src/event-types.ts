/** The seven SpyWatcher event types, each stored in its own partitioned table. */
export const EVENT_TYPES = [
  'presence',
  'typing',
  'message',
  'join',
  'deleted_message',
  'reaction_time',
  'role_change',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** The partitioned table that stores events of `type`. */
export function eventTable(type: EventType): `${EventType}_events` {
  return `${type}_events`;
}

export function isEventType(value: string): value is EventType {
  return (EVENT_TYPES as readonly string[]).includes(value);
}
