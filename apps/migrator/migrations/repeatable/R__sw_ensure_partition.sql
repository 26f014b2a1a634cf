-- Creates the partition of `parent` that holds `ts` unless one exists (found by range, not name); concurrent callers are serialised per month.
create or replace function sw_ensure_partition(parent text, ts timestamptz)
returns table (name text, created boolean)
language plpgsql
as $$
declare
  b record;
  found text;
  month timestamptz;
  lo timestamptz;
  hi timestamptz;
  part text;
begin
  select * into b from sw_partition_bounds(parent, ts);
  if b.name is null then
    raise exception 'table % has no partitioning policy in event_partitioning', parent;
  end if;
  found := sw_partition_of(parent, ts);
  if found is not null then
    return query select found, false;
    return;
  end if;
  -- the lock of each month the period touches, in order (an import holds one month's)
  for month in
    select generate_series(date_trunc('month', b.lower, 'UTC'), b.upper - interval '1 microsecond', interval '1 month')
  loop
    perform pg_advisory_xact_lock(hashtext('sw_partition:' || parent || '_p' || to_char(month at time zone 'UTC', 'YYYYMMDD')));
  end loop;
  found := sw_partition_of(parent, ts);
  if found is not null then
    return query select found, false;
    return;
  end if;
  select greatest(b.lower, coalesce(max(r.upper) filter (where r.upper <= ts), b.lower)),
         least(b.upper, coalesce(min(r.lower) filter (where r.lower > ts), b.upper))
    into lo, hi
  from pg_inherits i
  cross join lateral sw_partition_range(i.inhrelid) r
  where i.inhparent = format('%I', parent)::regclass and r.lower < b.upper and r.upper > b.lower;
  part := parent || '_p' || to_char(lo at time zone 'UTC', 'YYYYMMDD');
  begin
    execute format('create table %I partition of %I for values from (%L) to (%L)', part, parent, lo, hi);
  exception when duplicate_table then
    return query select part, false;
    return;
  end;
  return query select part, true;
end
$$;
