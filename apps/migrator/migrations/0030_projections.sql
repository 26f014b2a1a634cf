-- Projections: checkpoints, rebuild jobs and the analytics read models (apps/search).
--
-- A projection tails each event table it reads by (tx, position) with one checkpoint per event
-- type. The checkpoint row is updated compare-and-set in the same transaction as the read-model
-- change, so a batch is applied exactly once even with several runners.
create table projection_checkpoints (
  projection text not null,
  event_type text not null,
  tx xid8 not null default '0',
  position bigint not null default 0,
  events_applied bigint not null default 0,
  updated_at timestamptz not null default now(),
  primary key (projection, event_type)
);

-- Rebuild jobs (HTTP and CLI alike). updated_at is a heartbeat: a 'running' job without progress
-- for a minute is taken over by the next rebuild (its process died).
create table projection_rebuilds (
  id uuid primary key,
  projection text not null,
  status text not null check (status in ('running', 'succeeded', 'failed')),
  phase text not null,
  events_done bigint not null default 0,
  events_total bigint not null default 0,
  started_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  error text,
  report jsonb
);
create unique index projection_rebuilds_one_running on projection_rebuilds (projection) where status = 'running';
create index projection_rebuilds_recent on projection_rebuilds (projection, started_at desc);

-- Read models. Days and hours are UTC. Presence rows without a guild (legacy) count under guild ''.

-- projection "activity": per user, guild and day.
create table rm_user_daily (
  guild_id text not null,
  user_id text not null,
  day date not null,
  messages bigint not null default 0,
  typing bigint not null default 0,
  reactions bigint not null default 0,
  fast_reactions bigint not null default 0,
  presences bigint not null default 0,
  multi_client bigint not null default 0,
  role_changes bigint not null default 0,
  roles_added bigint not null default 0,
  roles_removed bigint not null default 0,
  deleted_messages bigint not null default 0,
  primary key (guild_id, day, user_id)
);
create index rm_user_daily_day_idx on rm_user_daily (day);
-- role changes are rare: role-drift reads only the rows that have some
create index rm_user_daily_role_guild_idx on rm_user_daily (guild_id, day) where role_changes > 0;
create index rm_user_daily_role_day_idx on rm_user_daily (day) where role_changes > 0;

-- projection "heatmap": per UTC day, 24-slot arrays of counts per hour (index 1 = 00:00 UTC), for
-- each guild, channel and user (scope, key). A day row instead of 24 hour rows keeps the table
-- several times smaller than the log, which is what makes both rebuilds and queries fast.
create function sw_hours_add(a bigint[], b bigint[]) returns bigint[]
language sql immutable parallel safe
as $$ select array_agg(coalesce(x, 0) + coalesce(y, 0) order by i) from unnest(a, b) with ordinality as u(x, y, i) $$;

create table rm_heatmap_daily (
  scope text not null check (scope in ('guild', 'channel', 'user')),
  key text not null,
  guild_id text not null,
  day date not null,
  messages bigint[] not null default array_fill(0::bigint, array[24]),
  typing bigint[] not null default array_fill(0::bigint, array[24]),
  reactions bigint[] not null default array_fill(0::bigint, array[24]),
  primary key (scope, key, guild_id, day)
);

-- projection "channels": per user, channel and day.
create table rm_user_channel_daily (
  guild_id text not null,
  user_id text not null,
  channel_id text not null,
  day date not null,
  events bigint not null default 0,
  primary key (guild_id, day, user_id, channel_id)
);
create index rm_user_channel_daily_day_idx on rm_user_channel_daily (day);

-- projection "clients": presence per client, and presences showing two or more clients at once.
create table rm_client_daily (
  guild_id text not null,
  user_id text not null,
  day date not null,
  client text not null,
  presences bigint not null default 0,
  primary key (guild_id, day, user_id, client)
);
create index rm_client_daily_day_idx on rm_client_daily (day);

create table rm_multi_client_daily (
  guild_id text not null,
  user_id text not null,
  day date not null,
  clients text not null,
  events bigint not null default 0,
  first_at timestamptz not null,
  last_at timestamptz not null,
  primary key (guild_id, day, user_id, clients)
);
create index rm_multi_client_daily_day_idx on rm_multi_client_daily (day);

-- projection "reactions": reaction deltas per user and day as value -> count, so medians are exact.
create table rm_reaction_deltas (
  guild_id text not null,
  user_id text not null,
  day date not null,
  delta_ms integer not null,
  reactions bigint not null default 0,
  primary key (guild_id, day, user_id, delta_ms)
);
create index rm_reaction_deltas_day_idx on rm_reaction_deltas (day);
