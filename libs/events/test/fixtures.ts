import { createEvent } from '../src/event.ts';
import type { EventType } from '../src/event-types.ts';
import type { EventByType } from '../src/schemas.ts';

/** One valid event of each type (fresh ids each call). */
export function sampleEvents(at = new Date()): { [T in EventType]: EventByType[T] } {
  return {
    presence: createEvent(
      'presence',
      {
        user_id: '100',
        username: 'wumpus',
        guild_id: '900',
        clients: ['desktop', 'mobile'],
        status: 'online',
      },
      { occurredAt: at },
    ),
    typing: createEvent(
      'typing',
      { user_id: '100', username: 'wumpus', channel_id: '500', channel_name: 'general', guild_id: '900' },
      { occurredAt: at },
    ),
    message: createEvent(
      'message',
      {
        message_id: '700',
        user_id: '100',
        username: 'wumpus',
        channel_id: '500',
        channel_name: 'general',
        guild_id: '900',
        content: 'hello <@101> <:wave:123> https://example.com `code`',
        attachment_count: 1,
        embed_count: 0,
      },
      { occurredAt: at, metadata: { bot: 'test' } },
    ),
    join: createEvent(
      'join',
      { user_id: '100', username: 'wumpus', guild_id: '900', account_age_days: 365 },
      { occurredAt: at },
    ),
    deleted_message: createEvent(
      'deleted_message',
      {
        message_id: '700',
        user_id: '100',
        username: 'wumpus',
        channel_id: '500',
        channel_name: 'general',
        guild_id: '900',
      },
      { occurredAt: at },
    ),
    reaction_time: createEvent(
      'reaction_time',
      {
        observer_id: '101',
        observer_name: 'clyde',
        actor_id: '100',
        actor_name: 'wumpus',
        channel_id: '500',
        guild_id: '900',
        delta_ms: 1234,
      },
      { occurredAt: at },
    ),
    role_change: createEvent(
      'role_change',
      { user_id: '100', username: 'wumpus', guild_id: '900', added_roles: ['1', '2'], removed_roles: [] },
      { occurredAt: at },
    ),
  };
}
