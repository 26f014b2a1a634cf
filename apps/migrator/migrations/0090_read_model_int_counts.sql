-- The read models' counts are int, not bigint (sums of milliseconds stay bigint).
--
-- A count per guild, user and UTC day or ISO week (or per channel, client, hour) fits an int with
-- room to spare: 2^31 events is 3,500 a second for a week from one user. What bigint cost:
-- - every analytics query sums these columns, and sum(bigint) accumulates in 128-bit integers and
--   returns numeric, while sum(int) adds into a bigint: behavior-shifts 13.7 -> 11.6 ms and
--   client-drift 21 -> 18 ms for a guild's 28-day window at 5,000,000 events;
-- - half the bytes of every value column: rm_user_daily's ten counts were 80 of its ~165 bytes a
--   row, and the heatmap's 24-slot arrays most of rm_heatmap_daily (517 MB -> 297 MB), which the
--   rebuild writes and the runner's upserts and the endpoints read.
-- Sums over these columns are still bigint, and so are the endpoints' numbers. An upsert that
-- would take one key past 2^31 fails (integer out of range) instead of wrapping.
--
-- On a populated database this rewrites each read-model table under an ACCESS EXCLUSIVE lock
-- (~3 s per 500 MB here): the analytics endpoints and the projection runner wait meanwhile. A
-- rebuild running meanwhile fails at its swap and can be started again.

create function sw_hours_add(a int[], b int[]) returns int[]
language sql immutable parallel safe
as $$ select array_agg(coalesce(x, 0) + coalesce(y, 0) order by i) from unnest(a, b) with ordinality as u(x, y, i) $$;

-- array_fill(0::bigint, ...) defaults cannot be cast: dropped and set again.
alter table rm_heatmap_daily
  alter column messages drop default,
  alter column typing drop default,
  alter column reactions drop default;
alter table rm_heatmap_daily
  alter column messages type int[],
  alter column typing type int[],
  alter column reactions type int[],
  alter column messages set default array_fill(0, array[24]),
  alter column typing set default array_fill(0, array[24]),
  alter column reactions set default array_fill(0, array[24]);
drop function sw_hours_add(bigint[], bigint[]);

alter table rm_user_daily
  alter column messages type int,
  alter column typing type int,
  alter column reactions type int,
  alter column fast_reactions type int,
  alter column presences type int,
  alter column multi_client type int,
  alter column role_changes type int,
  alter column roles_added type int,
  alter column roles_removed type int,
  alter column deleted_messages type int;
alter table rm_user_weekly
  alter column messages type int,
  alter column typing type int,
  alter column reactions type int,
  alter column fast_reactions type int,
  alter column presences type int,
  alter column multi_client type int,
  alter column role_changes type int,
  alter column roles_added type int,
  alter column roles_removed type int,
  alter column deleted_messages type int;
alter table rm_role_daily
  alter column role_changes type int,
  alter column roles_added type int,
  alter column roles_removed type int;
alter table rm_user_channel_daily alter column events type int;
alter table rm_user_channel_weekly alter column events type int;
alter table rm_client_daily alter column presences type int;
alter table rm_client_weekly alter column presences type int;
alter table rm_multi_client_daily alter column events type int;
alter table rm_reaction_daily
  alter column reactions type int,
  alter column fast_reactions type int;
alter table rm_reaction_weekly
  alter column reactions type int,
  alter column fast_reactions type int;
alter table rm_reaction_deltas alter column reactions type int;
