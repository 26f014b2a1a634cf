-- A weekly roll-up of rm_multi_client_daily, as the other per-day read models have.
--
-- multi-client read every daily row of its window (for a guild's 28 days, a row per day for each
-- user and client combination); whole ISO weeks now come from rm_multi_client_weekly (first and
-- last times are the least and greatest of the week's days), so only the days at the window's
-- edges are read from the daily table. Filled here from the daily table; the projection runner
-- and rebuilds keep it from then on.

create table rm_multi_client_weekly (
  like rm_multi_client_daily including defaults including constraints,
  constraint rm_multi_client_weekly_pkey primary key (guild_id, day, user_id, clients)
);
insert into rm_multi_client_weekly (guild_id, user_id, day, clients, events, first_at, last_at)
select guild_id, user_id, day - (extract(isodow from day)::int - 1) as week, clients, sum(events), min(first_at),
  max(last_at)
from rm_multi_client_daily group by guild_id, week, user_id, clients order by guild_id, week;
create index rm_multi_client_weekly_day_idx on rm_multi_client_weekly (day, guild_id);
-- A new read model grants SELECT to the dashboards' role in its own migration (0160).
grant select on rm_multi_client_weekly to spywatcher_grafana;
