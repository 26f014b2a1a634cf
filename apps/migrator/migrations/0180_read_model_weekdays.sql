-- Weekdays with activity as bits, so that days can be counted from weekly roll-up rows.
--
-- lurkers counts a user's days with presences and role-drift a user's days with role changes;
-- a count of rows needs every daily row of the window. A bit per ISO weekday (bit d - 1 for day d),
-- merged with bitwise or, is one bit on a daily row and the week's days on a weekly one: a query
-- masks the days outside its window and counts the bits, so whole weeks come from the roll-ups
-- as the sums do. rm_role_daily gets the weekly roll-up rm_role_weekly for that.
--
-- The columns are added with a constant default (no rewrite); filling them updates every row
-- with presences (most of rm_user_daily and rm_user_weekly) under row locks: on a populated
-- database run it in a quiet hour, or leave the columns to a rebuild of the activity projection.

alter table rm_user_daily add column presence_weekdays int not null default 0;
alter table rm_user_weekly add column presence_weekdays int not null default 0;
alter table rm_role_daily add column change_weekdays int not null default 0;

update rm_user_daily set presence_weekdays = 1 << (extract(isodow from day)::int - 1)
where presences > 0;
update rm_user_weekly w set presence_weekdays = d.weekdays
from (
  select guild_id, user_id, day - (extract(isodow from day)::int - 1) as week, bit_or(presence_weekdays) as weekdays
  from rm_user_daily where presences > 0 group by 1, 2, 3
) d
where w.guild_id = d.guild_id and w.user_id = d.user_id and w.day = d.week;
-- A row of rm_role_daily exists only for a day with role changes.
update rm_role_daily set change_weekdays = 1 << (extract(isodow from day)::int - 1);

create table rm_role_weekly (
  like rm_role_daily including defaults including constraints,
  constraint rm_role_weekly_pkey primary key (guild_id, day, user_id)
);
insert into rm_role_weekly (guild_id, user_id, day, role_changes, roles_added, roles_removed, change_weekdays)
select guild_id, user_id, day - (extract(isodow from day)::int - 1) as week, sum(role_changes), sum(roles_added),
  sum(roles_removed), bit_or(change_weekdays)
from rm_role_daily group by guild_id, week, user_id order by guild_id, week;
create index rm_role_weekly_day_idx on rm_role_weekly (day, guild_id);
-- A new read model grants SELECT to the dashboards' role in its own migration (0160).
grant select on rm_role_weekly to spywatcher_grafana;
