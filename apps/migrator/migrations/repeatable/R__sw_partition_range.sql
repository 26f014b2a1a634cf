-- A partition's range, read from its bound expression.
create or replace function sw_partition_range(partition oid)
returns table (lower timestamptz, upper timestamptz)
language sql stable
as $$
  select m[1]::timestamptz, m[2]::timestamptz
  from pg_class c
  cross join lateral regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') m
  where c.oid = partition
$$;
