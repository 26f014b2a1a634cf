import { type Static, type TSchema, Type } from 'typebox';
import type { EventType } from './event-types.ts';

/**
 * The seven SpyWatcher event types as TypeBox schemas: each definition is at once the
 * TypeScript type (`Static<>`), the runtime validator (compiled in validate.ts) and the
 * JSON Schema that Fastify puts into OpenAPI.
 *
 * Shape: an envelope with the per-type fields nested under `data`
 *   { "id": "<uuid>", "type": "message", "occurred_at": "<ISO date-time>", "metadata": {...}, "data": {...} }
 * Nesting keeps envelope names (id, type, metadata) from ever clashing with a type's own fields
 * and makes `data` map one to one onto the typed columns of `<type>_events`.
 */

/** Discord ids (snowflakes) are decimal strings; stored as text everywhere. */
export const Snowflake = Type.String({
  pattern: '^[0-9]{1,20}$',
  description: 'Discord snowflake id as a decimal string',
  examples: ['80351110224678912'],
});
const Name = (description: string, example: string) =>
  Type.String({ minLength: 1, maxLength: 100, description, examples: [example] });
const Count = (description: string) =>
  Type.Integer({ minimum: 0, maximum: 2_147_483_647, description, examples: [0] });
const RoleList = (description: string) => Type.Array(Snowflake, { maxItems: 250, description });

export const CLIENTS = ['desktop', 'web', 'mobile'] as const;
export const STATUSES = ['online', 'idle', 'dnd', 'offline'] as const;

/** Bounds on `metadata`: a small JSON object, never a dumping ground. */
export const METADATA_MAX_KEYS = 32;
export const METADATA_MAX_BYTES = 8192;
/** Levels of nested objects and arrays in `metadata`, the metadata object itself being the first. */
export const METADATA_MAX_DEPTH = 16;
/** Discord's own limit for message content (Nitro). */
export const CONTENT_MAX_CHARS = 4000;

export const PresenceData = Type.Object(
  {
    user_id: Snowflake,
    username: Name('Discord username', 'wumpus'),
    guild_id: Type.Optional(Snowflake),
    clients: Type.Array(Type.Union([Type.Literal('desktop'), Type.Literal('web'), Type.Literal('mobile')]), {
      maxItems: 3,
      uniqueItems: true,
      description: 'Clients the user is active on',
      examples: [['desktop', 'mobile']],
    }),
    status: Type.Optional(
      Type.Union([
        Type.Literal('online'),
        Type.Literal('idle'),
        Type.Literal('dnd'),
        Type.Literal('offline'),
      ]),
    ),
  },
  { additionalProperties: false },
);

export const TypingData = Type.Object(
  {
    user_id: Snowflake,
    username: Name('Discord username', 'wumpus'),
    channel_id: Snowflake,
    channel_name: Name('Channel name', 'general'),
    guild_id: Snowflake,
  },
  { additionalProperties: false },
);

export const MessageData = Type.Object(
  {
    message_id: Type.Optional(Snowflake),
    user_id: Snowflake,
    username: Name('Discord username', 'wumpus'),
    channel_id: Snowflake,
    channel_name: Name('Channel name', 'general'),
    guild_id: Snowflake,
    content: Type.String({
      maxLength: CONTENT_MAX_CHARS,
      description: 'Message text (may be empty, e.g. an attachment only)',
      examples: ['hello <@80351110224678912> :wave:'],
    }),
    attachment_count: Type.Optional(Count('Number of attachments')),
    embed_count: Type.Optional(Count('Number of embeds')),
  },
  { additionalProperties: false },
);

export const JoinData = Type.Object(
  {
    user_id: Snowflake,
    username: Name('Discord username', 'wumpus'),
    guild_id: Snowflake,
    account_age_days: Count('Age of the Discord account when it joined, in days'),
  },
  { additionalProperties: false },
);

export const DeletedMessageData = Type.Object(
  {
    message_id: Type.Optional(Snowflake),
    user_id: Snowflake,
    username: Name('Discord username', 'wumpus'),
    channel_id: Snowflake,
    channel_name: Name('Channel name', 'general'),
    guild_id: Snowflake,
  },
  { additionalProperties: false },
);

export const ReactionTimeData = Type.Object(
  {
    observer_id: Snowflake,
    observer_name: Name('Who reacted', 'clyde'),
    actor_id: Snowflake,
    actor_name: Name('Whose message or presence was reacted to', 'wumpus'),
    channel_id: Snowflake,
    guild_id: Snowflake,
    delta_ms: Count('Time between the action and the reaction, in milliseconds'),
  },
  { additionalProperties: false },
);

export const RoleChangeData = Type.Object(
  {
    user_id: Snowflake,
    username: Name('Discord username', 'wumpus'),
    guild_id: Snowflake,
    added_roles: RoleList('Role ids added'),
    removed_roles: RoleList('Role ids removed'),
  },
  { additionalProperties: false },
);

export const EVENT_DATA_SCHEMAS = {
  presence: PresenceData,
  typing: TypingData,
  message: MessageData,
  join: JoinData,
  deleted_message: DeletedMessageData,
  reaction_time: ReactionTimeData,
  role_change: RoleChangeData,
} as const satisfies Record<EventType, TSchema>;

export const EventId = Type.String({
  format: 'uuid',
  description: 'Chosen by the publisher (UUIDv7 by default); the deduplication key end to end',
  examples: ['01936f0e-8a5c-7c4e-9d5e-1b2c3d4e5f60'],
});
export const OccurredAt = Type.String({
  format: 'date-time',
  description: 'When it happened on Discord (ISO 8601 with a time zone)',
  examples: ['2026-11-26T21:04:05.123Z'],
});
export const Metadata = Type.Record(Type.String(), Type.Unknown(), {
  maxProperties: METADATA_MAX_KEYS,
  description: `Free-form JSON object from the publisher (at most ${METADATA_MAX_KEYS} keys at its top, ${METADATA_MAX_DEPTH} levels of nesting and ${METADATA_MAX_BYTES} bytes of JSON; strings well-formed Unicode without U+0000)`,
  examples: [{ bot: 'spywatcher-bot/2.1' }],
});

function envelope<T extends EventType, D extends TSchema>(type: T, data: D) {
  return Type.Object(
    {
      id: EventId,
      type: Type.Literal(type),
      occurred_at: OccurredAt,
      metadata: Type.Optional(Metadata),
      data,
    },
    { additionalProperties: false, title: `${type} event` },
  );
}

export const PresenceEvent = envelope('presence', PresenceData);
export const TypingEvent = envelope('typing', TypingData);
export const MessageEvent = envelope('message', MessageData);
export const JoinEvent = envelope('join', JoinData);
export const DeletedMessageEvent = envelope('deleted_message', DeletedMessageData);
export const ReactionTimeEvent = envelope('reaction_time', ReactionTimeData);
export const RoleChangeEvent = envelope('role_change', RoleChangeData);

export const EVENT_SCHEMAS = {
  presence: PresenceEvent,
  typing: TypingEvent,
  message: MessageEvent,
  join: JoinEvent,
  deleted_message: DeletedMessageEvent,
  reaction_time: ReactionTimeEvent,
  role_change: RoleChangeEvent,
} as const;

/** Any SpyWatcher event (for OpenAPI: one of the seven shapes, told apart by `type`). */
export const SpywatcherEventSchema = Type.Union(
  [
    PresenceEvent,
    TypingEvent,
    MessageEvent,
    JoinEvent,
    DeletedMessageEvent,
    ReactionTimeEvent,
    RoleChangeEvent,
  ],
  { description: 'A SpyWatcher event: envelope plus the fields of its type under `data`' },
);

export type PresenceEvent = Static<typeof PresenceEvent>;
export type TypingEvent = Static<typeof TypingEvent>;
export type MessageEvent = Static<typeof MessageEvent>;
export type JoinEvent = Static<typeof JoinEvent>;
export type DeletedMessageEvent = Static<typeof DeletedMessageEvent>;
export type ReactionTimeEvent = Static<typeof ReactionTimeEvent>;
export type RoleChangeEvent = Static<typeof RoleChangeEvent>;

export interface EventByType {
  presence: PresenceEvent;
  typing: TypingEvent;
  message: MessageEvent;
  join: JoinEvent;
  deleted_message: DeletedMessageEvent;
  reaction_time: ReactionTimeEvent;
  role_change: RoleChangeEvent;
}
export type SpywatcherEvent = EventByType[EventType];
export type EventData<T extends EventType> = EventByType[T]['data'];
