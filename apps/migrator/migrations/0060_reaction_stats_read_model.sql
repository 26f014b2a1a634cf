-- Projection "reactions", second table: per reacting user, guild and UTC day the count, the fast
-- ones and the sum of deltas. reaction-stats ranks users from these small rows and reads the
-- exact deltas (for the median) only for the users on the page it returns; before, it sorted
-- every delta of every user in the window, which is about as many rows as the raw log.
create table rm_reaction_daily (
  guild_id text not null,
  user_id text not null,
  day date not null,
  reactions bigint not null default 0,
  fast_reactions bigint not null default 0,
  delta_ms_sum bigint not null default 0,
  primary key (guild_id, day, user_id)
);
create index rm_reaction_daily_day_idx on rm_reaction_daily (day);

-- Filled from the deltas already projected, so it is at the reactions checkpoint from the start
-- (3000 ms is FAST_REACTION_MS in apps/search/src/projections/definitions.ts).
insert into rm_reaction_daily (guild_id, user_id, day, reactions, fast_reactions, delta_ms_sum)
select guild_id, user_id, day, sum(reactions), coalesce(sum(reactions) filter (where delta_ms < 3000), 0),
  sum(delta_ms::bigint * reactions)
from rm_reaction_deltas
group by guild_id, user_id, day;

-- The deltas are now read per user (the page's users), not per day.
drop index rm_reaction_deltas_day_idx;
alter table rm_reaction_deltas drop constraint rm_reaction_deltas_pkey;
alter table rm_reaction_deltas add primary key (user_id, guild_id, day, delta_ms);
