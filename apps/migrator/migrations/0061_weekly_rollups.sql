-- Weekly roll-ups of the per-day read models the analytics read most: the same columns, `day`
-- holding the Monday of the ISO week (UTC). A 28-day window then reads its whole weeks here and
-- only the days at its edges from the daily table: about half the rows (each user appears once
-- per week instead of once per active day). The projections keep them in the same transaction
-- as the daily rows; here they are filled from the daily rows, so they start at the same
-- checkpoint.
create table rm_user_weekly (like rm_user_daily including defaults including constraints);
alter table rm_user_weekly add primary key (guild_id, day, user_id);
create index rm_user_weekly_day_idx on rm_user_weekly (day, guild_id);
insert into rm_user_weekly
select guild_id, user_id, day - (extract(isodow from day)::int - 1) as day, sum(messages), sum(typing),
  sum(reactions), sum(fast_reactions), sum(presences), sum(multi_client), sum(role_changes), sum(roles_added),
  sum(roles_removed), sum(deleted_messages)
from rm_user_daily group by 1, 2, 3;

create table rm_user_channel_weekly (like rm_user_channel_daily including defaults including constraints);
alter table rm_user_channel_weekly add primary key (guild_id, day, user_id, channel_id);
create index rm_user_channel_weekly_day_idx on rm_user_channel_weekly (day, guild_id);
insert into rm_user_channel_weekly
select guild_id, user_id, channel_id, day - (extract(isodow from day)::int - 1) as day, sum(events)
from rm_user_channel_daily group by 1, 2, 3, 4;

create table rm_client_weekly (like rm_client_daily including defaults including constraints);
alter table rm_client_weekly add primary key (guild_id, day, user_id, client);
create index rm_client_weekly_day_idx on rm_client_weekly (day, guild_id);
insert into rm_client_weekly
select guild_id, user_id, day - (extract(isodow from day)::int - 1) as day, client, sum(presences)
from rm_client_daily group by 1, 2, 3, 4;

create table rm_reaction_weekly (like rm_reaction_daily including defaults including constraints);
alter table rm_reaction_weekly add primary key (guild_id, day, user_id);
create index rm_reaction_weekly_day_idx on rm_reaction_weekly (day, guild_id);
insert into rm_reaction_weekly
select guild_id, user_id, day - (extract(isodow from day)::int - 1) as day, sum(reactions), sum(fast_reactions),
  sum(delta_ms_sum)
from rm_reaction_daily group by 1, 2, 3;

-- The day indexes also carry the guild. A rebuild writes its time chunks side by side, each in
-- (guild, day) order, so `day` correlates with the physical order and `guild_id` does not: the
-- planner then read a guild's window through the day-only index, visiting every guild's rows of
-- those days (a 28-day guild window: ~25 -> ~50 ms). With the guild in the index either index
-- reads only the guild's rows.
drop index rm_user_daily_day_idx;
create index rm_user_daily_day_idx on rm_user_daily (day, guild_id);
drop index rm_user_channel_daily_day_idx;
create index rm_user_channel_daily_day_idx on rm_user_channel_daily (day, guild_id);
drop index rm_client_daily_day_idx;
create index rm_client_daily_day_idx on rm_client_daily (day, guild_id);
drop index rm_multi_client_daily_day_idx;
create index rm_multi_client_daily_day_idx on rm_multi_client_daily (day, guild_id);
drop index rm_reaction_daily_day_idx;
create index rm_reaction_daily_day_idx on rm_reaction_daily (day, guild_id);
