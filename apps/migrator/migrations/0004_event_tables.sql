-- The event log: one append-only table per SpyWatcher event type, range-partitioned on
-- occurred_at. Discord snowflakes are text everywhere (ids are compared, never added up,
-- and legacy rows carry them as strings).
--
-- Columns shared by every event table:
--   id           the event id chosen by the publisher (UUIDv7); with occurred_at the primary key,
--                which is what makes storing the same event twice store it once
--   occurred_at  when it happened on Discord (the partition key)
--   recorded_at  when it was stored
--   tx, position the id of the inserting transaction and a global sequence number: a reader tails
--                the log by (tx, position) and reads only below pg_snapshot_xmin, so rows committed
--                late by a slower transaction are never skipped
--   metadata     bounded JSON object from the publisher

create sequence event_position_seq as bigint;

-- Chat-aware text for full-text search: Discord markup is rewritten so that custom emoji names
-- and link hosts are searchable words, mentions/channels/timestamps do not pollute the index,
-- and accents are folded (see sw_chat below).
create text search configuration sw_chat (copy = simple);
alter text search configuration sw_chat
  alter mapping for word, hword, hword_part, asciiword, asciihword, hword_asciipart with unaccent, simple;

create function sw_message_search_text(content text) returns text
language sql immutable parallel safe
as $$
  select regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
    coalesce(content, ''),
    '<a?:([A-Za-z0-9_]+):[0-9]+>', ' \1 ', 'g'),          -- custom emoji -> its name
    '<(@[!&]?|#)[0-9]+>', ' ', 'g'),                        -- user/role/channel mentions
    '<t:-?[0-9]+(:[tTdDfFR])?>', ' ', 'g'),                 -- timestamps
    'https?://([^/\s?#:]+)[^\s]*', ' \1 ', 'gi'),          -- links -> host
    '[`*_~|>]+', ' ', 'g')                                  -- markdown punctuation
$$;

create function sw_message_tsv(content text) returns tsvector
language sql immutable parallel safe
as $$ select to_tsvector('public.sw_chat'::regconfig, sw_message_search_text(content)) $$;

create table presence_events (
  id uuid not null,
  occurred_at timestamptz not null,
  recorded_at timestamptz not null default now(),
  tx xid8 not null default pg_current_xact_id(),
  position bigint not null default nextval('event_position_seq'),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  user_id text not null check (user_id <> ''),
  username text not null,
  -- legacy SpyWatcher presence rows carry no guild
  guild_id text,
  clients text[] not null default '{}' check (clients <@ array['desktop', 'web', 'mobile']::text[]),
  status text check (status in ('online', 'idle', 'dnd', 'offline')),
  primary key (id, occurred_at)
) partition by range (occurred_at);

create table typing_events (
  id uuid not null,
  occurred_at timestamptz not null,
  recorded_at timestamptz not null default now(),
  tx xid8 not null default pg_current_xact_id(),
  position bigint not null default nextval('event_position_seq'),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  user_id text not null check (user_id <> ''),
  username text not null,
  channel_id text not null,
  channel_name text not null,
  guild_id text not null,
  primary key (id, occurred_at)
) partition by range (occurred_at);

create table message_events (
  id uuid not null,
  occurred_at timestamptz not null,
  recorded_at timestamptz not null default now(),
  tx xid8 not null default pg_current_xact_id(),
  position bigint not null default nextval('event_position_seq'),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  -- Discord's message id; legacy rows have none
  message_id text,
  user_id text not null check (user_id <> ''),
  username text not null,
  channel_id text not null,
  channel_name text not null,
  guild_id text not null,
  content text not null default '' check (char_length(content) <= 4000),
  attachment_count integer not null default 0 check (attachment_count >= 0),
  embed_count integer not null default 0 check (embed_count >= 0),
  tsv tsvector generated always as (sw_message_tsv(content)) stored,
  primary key (id, occurred_at)
) partition by range (occurred_at);

create table join_events (
  id uuid not null,
  occurred_at timestamptz not null,
  recorded_at timestamptz not null default now(),
  tx xid8 not null default pg_current_xact_id(),
  position bigint not null default nextval('event_position_seq'),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  user_id text not null check (user_id <> ''),
  username text not null,
  guild_id text not null,
  account_age_days integer not null check (account_age_days >= 0),
  primary key (id, occurred_at)
) partition by range (occurred_at);

create table deleted_message_events (
  id uuid not null,
  occurred_at timestamptz not null,
  recorded_at timestamptz not null default now(),
  tx xid8 not null default pg_current_xact_id(),
  position bigint not null default nextval('event_position_seq'),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  message_id text,
  user_id text not null check (user_id <> ''),
  username text not null,
  channel_id text not null,
  channel_name text not null,
  guild_id text not null,
  primary key (id, occurred_at)
) partition by range (occurred_at);

create table reaction_time_events (
  id uuid not null,
  occurred_at timestamptz not null,
  recorded_at timestamptz not null default now(),
  tx xid8 not null default pg_current_xact_id(),
  position bigint not null default nextval('event_position_seq'),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  observer_id text not null check (observer_id <> ''),
  observer_name text not null,
  actor_id text not null check (actor_id <> ''),
  actor_name text not null,
  channel_id text not null,
  guild_id text not null,
  delta_ms integer not null check (delta_ms >= 0),
  primary key (id, occurred_at)
) partition by range (occurred_at);

create table role_change_events (
  id uuid not null,
  occurred_at timestamptz not null,
  recorded_at timestamptz not null default now(),
  tx xid8 not null default pg_current_xact_id(),
  position bigint not null default nextval('event_position_seq'),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  user_id text not null check (user_id <> ''),
  username text not null,
  guild_id text not null,
  added_roles text[] not null default '{}',
  removed_roles text[] not null default '{}',
  primary key (id, occurred_at)
) partition by range (occurred_at);

-- Tailing by (tx, position) for projections.
create index presence_events_tail_idx on presence_events (tx, position);
create index typing_events_tail_idx on typing_events (tx, position);
create index message_events_tail_idx on message_events (tx, position);
create index join_events_tail_idx on join_events (tx, position);
create index deleted_message_events_tail_idx on deleted_message_events (tx, position);
create index reaction_time_events_tail_idx on reaction_time_events (tx, position);
create index role_change_events_tail_idx on role_change_events (tx, position);

-- Per user / guild / channel by time: timelines, analytics, moderation views.
create index presence_events_user_idx on presence_events (user_id, occurred_at desc);
create index presence_events_guild_idx on presence_events (guild_id, occurred_at desc);
create index presence_events_clients_idx on presence_events using gin (clients);

create index typing_events_user_idx on typing_events (user_id, occurred_at desc);
create index typing_events_guild_idx on typing_events (guild_id, occurred_at desc);
create index typing_events_channel_idx on typing_events (channel_id, occurred_at desc);

create index message_events_user_idx on message_events (user_id, occurred_at desc);
create index message_events_guild_idx on message_events (guild_id, occurred_at desc);
create index message_events_channel_idx on message_events (channel_id, occurred_at desc);
create index message_events_message_id_idx on message_events (message_id) where message_id is not null;
create index message_events_tsv_idx on message_events using gin (tsv);

create index join_events_user_idx on join_events (user_id, occurred_at desc);
create index join_events_guild_idx on join_events (guild_id, occurred_at desc);

create index deleted_message_events_user_idx on deleted_message_events (user_id, occurred_at desc);
create index deleted_message_events_guild_idx on deleted_message_events (guild_id, occurred_at desc);
create index deleted_message_events_channel_idx on deleted_message_events (channel_id, occurred_at desc);
create index deleted_message_events_message_id_idx on deleted_message_events (message_id) where message_id is not null;

create index reaction_time_events_observer_idx on reaction_time_events (observer_id, occurred_at desc);
create index reaction_time_events_actor_idx on reaction_time_events (actor_id, occurred_at desc);
create index reaction_time_events_guild_idx on reaction_time_events (guild_id, occurred_at desc);
create index reaction_time_events_channel_idx on reaction_time_events (channel_id, occurred_at desc);

create index role_change_events_user_idx on role_change_events (user_id, occurred_at desc);
create index role_change_events_guild_idx on role_change_events (guild_id, occurred_at desc);
create index role_change_events_added_roles_idx on role_change_events using gin (added_roles);
