import type { EventType } from './event-types.ts';
import type { EventByType, EventData } from './schemas.ts';
import { uuidv7 } from './uuid.ts';

/**
 * Builds an event envelope around `data`: a fresh UUIDv7 id and `occurred_at` = now unless
 * given. Keep the returned object when retrying: its id is what makes a retry a duplicate.
 */
export function createEvent<T extends EventType>(
  type: T,
  data: EventData<T>,
  options: { id?: string; occurredAt?: Date | string; metadata?: Record<string, unknown> } = {},
): EventByType[T] {
  const at = options.occurredAt ?? new Date();
  const occurredAt = typeof at === 'string' ? at : at.toISOString();
  return {
    id: options.id ?? uuidv7(typeof at === 'string' ? Date.parse(at) : at.getTime()),
    type,
    occurred_at: occurredAt,
    ...(options.metadata ? { metadata: options.metadata } : {}),
    data,
  } as EventByType[T];
}
