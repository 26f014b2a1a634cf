-- Projection "activity", role changes on their own: per guild, UTC day and user, only where a
-- change happened. role-drift read them out of the wide per-day activity rows (a partial index
-- picked the rows, but each one still cost a visit to a wide row on a page shared with other
-- users' days); these rows are narrow and contiguous per guild and day.
create table rm_role_daily (
  guild_id text not null,
  user_id text not null,
  day date not null,
  role_changes bigint not null default 0,
  roles_added bigint not null default 0,
  roles_removed bigint not null default 0,
  primary key (guild_id, day, user_id)
);
create index rm_role_daily_day_idx on rm_role_daily (day, guild_id);

-- Filled from the activity rows already projected, so it starts at the activity checkpoint.
insert into rm_role_daily (guild_id, user_id, day, role_changes, roles_added, roles_removed)
select guild_id, user_id, day, role_changes, roles_added, roles_removed
from rm_user_daily where role_changes > 0
order by guild_id, day;

drop index rm_user_daily_role_guild_idx;
drop index rm_user_daily_role_day_idx;
