-- Element-wise sum of two per-hour count arrays, used by the read models' upserts.
create or replace function sw_hours_add(a int[], b int[]) returns int[]
language sql immutable parallel safe
as $$ select array_agg(coalesce(x, 0) + coalesce(y, 0) order by i) from unnest(a, b) with ordinality as u(x, y, i) $$;
