-- Partition layout for the event tables, read by sw_ensure_partition and by the upkeep job.
-- period: weekly for the high-volume, short-lived types (presence, typing) and for
-- deleted messages (30-day retention: a monthly partition would keep data up to 60 days);
-- monthly for the rest, whose rows are kept longer and which legacy imports spread over years
-- (monthly keeps a 10-year import to ~120 partitions per table).
create table event_partitioning (
  table_name text primary key,
  period text not null check (period in ('week', 'month')),
  -- null keeps partitions forever
  retention_days integer check (retention_days is null or retention_days > 0)
);

insert into event_partitioning (table_name, period, retention_days) values
  ('presence_events', 'week', 90),
  ('typing_events', 'week', 90),
  ('message_events', 'month', 90),
  ('join_events', 'month', 90),
  ('deleted_message_events', 'week', 30),
  ('reaction_time_events', 'month', 90),
  ('role_change_events', 'month', 90);

-- Bounds and name of the partition of `parent` that holds `ts` (periods start at UTC midnight;
-- weeks on Monday).
create function sw_partition_bounds(parent text, ts timestamptz)
returns table (name text, lower timestamptz, upper timestamptz)
language sql stable
as $$
  select parent || '_p' || to_char(b.lower at time zone 'UTC', 'YYYYMMDD'), b.lower, b.upper
  from event_partitioning p
  cross join lateral (
    select date_trunc(p.period, ts, 'UTC') as lower,
           date_trunc(p.period, ts, 'UTC') + ('1 ' || p.period)::interval as upper
  ) b
  where p.table_name = parent
$$;

-- Bounds of an existing partition, read from its catalog definition.
create function sw_partition_range(partition oid)
returns table (lower timestamptz, upper timestamptz)
language sql stable
as $$
  select m[1]::timestamptz, m[2]::timestamptz
  from pg_class c
  cross join lateral regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') m
  where c.oid = partition
$$;

-- Creates the partition of `parent` for `ts` if it is missing. Safe when many writers hit the
-- same missing period at once: an advisory lock keyed on the partition name serialises them,
-- and the later ones find it present.
create function sw_ensure_partition(parent text, ts timestamptz)
returns table (name text, created boolean)
language plpgsql
as $$
declare
  b record;
begin
  select * into b from sw_partition_bounds(parent, ts);
  if b.name is null then
    raise exception 'table % has no partitioning policy in event_partitioning', parent;
  end if;
  if to_regclass(format('%I', b.name)) is not null then
    return query select b.name, false;
    return;
  end if;
  perform pg_advisory_xact_lock(hashtext('sw_partition:' || b.name));
  if to_regclass(format('%I', b.name)) is not null then
    return query select b.name, false;
    return;
  end if;
  execute format('create table %I partition of %I for values from (%L) to (%L)', b.name, parent, b.lower, b.upper);
  return query select b.name, true;
end
$$;
