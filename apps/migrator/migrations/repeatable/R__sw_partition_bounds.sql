-- The name and range of the partition of `parent` holding `ts`, by the table's period in event_partitioning.
create or replace function sw_partition_bounds(parent text, ts timestamptz)
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
