-- Discord ids (and the read models' keys made of them) compare by bytes: COLLATE "C".
--
-- They are ASCII digits, so the order is the same as the database's default collation gives
-- them (C.UTF-8 orders by code point too); only the cost changes. Under a libc collation other
-- than C, PostgreSQL 15 compares every pair of text keys with strcoll and cannot use abbreviated
-- keys, so sorting them (index builds, the read models' clustered writes, ORDER BY ... user_id)
-- costs about twice as much: building one index over a million snowflakes took 2.9 s, against
-- 1.4 s with COLLATE "C". Names (username, channel_name) keep the default collation: lower() on
-- them must follow the language's case rules.
--
-- Every column that is joined or compared with another is changed together: an index can only
-- serve a comparison made under its own collation, so a C column joined to a default-collation
-- key would lose that key's index.
--
-- On a populated database this rebuilds the indexes holding these columns (no table rewrite: the
-- type stays text) under an ACCESS EXCLUSIVE lock per table; run it in a quiet hour.

alter table presence_events
  alter column user_id type text collate "C",
  alter column guild_id type text collate "C";
alter table typing_events
  alter column user_id type text collate "C",
  alter column channel_id type text collate "C",
  alter column guild_id type text collate "C";
alter table message_events
  alter column message_id type text collate "C",
  alter column user_id type text collate "C",
  alter column channel_id type text collate "C",
  alter column guild_id type text collate "C";
alter table join_events
  alter column user_id type text collate "C",
  alter column guild_id type text collate "C";
alter table deleted_message_events
  alter column message_id type text collate "C",
  alter column user_id type text collate "C",
  alter column channel_id type text collate "C",
  alter column guild_id type text collate "C";
alter table reaction_time_events
  alter column observer_id type text collate "C",
  alter column actor_id type text collate "C",
  alter column channel_id type text collate "C",
  alter column guild_id type text collate "C";
alter table role_change_events
  alter column user_id type text collate "C",
  alter column guild_id type text collate "C";

alter table users alter column discord_id type text collate "C";
alter table guilds alter column guild_id type text collate "C";
alter table banned_users alter column user_id type text collate "C";
alter table search_deleted_messages alter column message_id type text collate "C";

alter table rm_user_daily
  alter column guild_id type text collate "C",
  alter column user_id type text collate "C";
alter table rm_user_weekly
  alter column guild_id type text collate "C",
  alter column user_id type text collate "C";
alter table rm_role_daily
  alter column guild_id type text collate "C",
  alter column user_id type text collate "C";
alter table rm_heatmap_daily
  alter column scope type text collate "C",
  alter column key type text collate "C",
  alter column guild_id type text collate "C";
alter table rm_user_channel_daily
  alter column guild_id type text collate "C",
  alter column user_id type text collate "C",
  alter column channel_id type text collate "C";
alter table rm_user_channel_weekly
  alter column guild_id type text collate "C",
  alter column user_id type text collate "C",
  alter column channel_id type text collate "C";
alter table rm_client_daily
  alter column guild_id type text collate "C",
  alter column user_id type text collate "C",
  alter column client type text collate "C";
alter table rm_client_weekly
  alter column guild_id type text collate "C",
  alter column user_id type text collate "C",
  alter column client type text collate "C";
alter table rm_multi_client_daily
  alter column guild_id type text collate "C",
  alter column user_id type text collate "C",
  alter column clients type text collate "C";
alter table rm_reaction_daily
  alter column guild_id type text collate "C",
  alter column user_id type text collate "C";
alter table rm_reaction_weekly
  alter column guild_id type text collate "C",
  alter column user_id type text collate "C";
alter table rm_reaction_deltas
  alter column guild_id type text collate "C",
  alter column user_id type text collate "C";
