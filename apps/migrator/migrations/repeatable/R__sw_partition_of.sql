-- The existing partition of `parent` whose range holds `ts`, or null.
create or replace function sw_partition_of(parent text, ts timestamptz) returns text
language sql stable
as $$
  select c.relname::text
  from pg_inherits i
  join pg_class c on c.oid = i.inhrelid
  cross join lateral sw_partition_range(c.oid) b
  where i.inhparent = format('%I', parent)::regclass and ts >= b.lower and ts < b.upper
$$;
