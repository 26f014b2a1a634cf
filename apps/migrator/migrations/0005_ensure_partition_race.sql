-- sw_ensure_partition (0003) re-checks to_regclass after taking the advisory lock, but an advisory
-- lock does not make the backend process catalog invalidations, so a writer that waited for
-- another one to create the same partition can still see it as missing and fail with
-- "relation ... already exists" (SQLSTATE 42P07). Treat that as "someone else created it".
create or replace function sw_ensure_partition(parent text, ts timestamptz)
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
  begin
    execute format('create table %I partition of %I for values from (%L) to (%L)', b.name, parent, b.lower, b.upper);
  exception when duplicate_table then
    return query select b.name, false;
    return;
  end;
  return query select b.name, true;
end
$$;
