import type { Queryable } from '@spywatcher/db';

/**
 * Bloat estimates from the planner's statistics (no table scan, so the health report stays
 * fast on a large log). Tables are matched with pg_stats by their raw catalog names, never
 * through regclass text, so mixed-case names work; each leaf partition is estimated on its own
 * (a partitioned parent has no storage) and named with its parent.
 */
export interface TableBloat {
  oid: number;
  schema: string;
  table: string;
  parent: string | null;
  sizeBytes: number;
  bloatBytes: number;
  bloatRatio: number;
  deadTuples: number;
  /**
   * True when dead tuples explain less than half of the empty space: VACUUM has already made
   * it reusable, so VACUUMing again changes nothing (only a rewrite returns it to the OS).
   */
  reusable: boolean;
}

export interface IndexBloat {
  schema: string;
  index: string;
  table: string;
  valid: boolean;
  sizeBytes: number;
  bloatBytes: number;
  bloatRatio: number;
}

export async function estimateTableBloat(sql: Queryable): Promise<TableBloat[]> {
  const rows = await sql<
    {
      oid: number;
      schema: string;
      table: string;
      parent: string | null;
      size: string;
      bloat: string;
      ratio: number;
      dead: string;
      dead_bytes: string;
    }[]
  >`
    with cols as (
      select c.oid,
             sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) as data_width,
             count(*) filter (where s.avg_width is null) as missing,
             bool_or(coalesce(s.null_frac, 0) > 0) as has_nulls,
             count(*) as ncols
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      left join pg_stats s on s.schemaname = n.nspname and s.tablename = c.relname
                          and s.attname = a.attname and not s.inherited
      where c.relkind in ('r', 'm') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'
      group by c.oid
    ), est as (
      select c.oid, n.nspname, c.relname, c.relpages, c.reltuples,
             current_setting('block_size')::int as bs,
             coalesce((select option_value::int from pg_options_to_table(c.reloptions) where option_name = 'fillfactor'), 100) as ff,
             -- heap tuple header (23, aligned) + null bitmap + data, aligned to 8; plus a 4-byte line pointer
             ceil((24 + case when cols.has_nulls then ceil(cols.ncols / 8.0) else 0 end + cols.data_width) / 8.0) * 8 + 4 as tuple_bytes
      from cols
      join pg_class c on c.oid = cols.oid
      join pg_namespace n on n.oid = c.relnamespace
      where cols.missing = 0 and c.reltuples >= 0
    )
    select e.oid::int as oid, e.nspname as schema, e.relname as table,
           (select p.relname from pg_inherits i join pg_class p on p.oid = i.inhparent where i.inhrelid = e.oid limit 1) as parent,
           (e.relpages::bigint * e.bs) as size,
           greatest(e.relpages - ceil(e.reltuples * e.tuple_bytes / ((e.bs - 24) * e.ff / 100.0)), 0)::bigint * e.bs as bloat,
           case when e.relpages = 0 then 0
                else greatest(e.relpages - ceil(e.reltuples * e.tuple_bytes / ((e.bs - 24) * e.ff / 100.0)), 0)::float8 / e.relpages end as ratio,
           coalesce(st.n_dead_tup, 0) as dead,
           (coalesce(st.n_dead_tup, 0) * e.tuple_bytes)::bigint as dead_bytes
    from est e
    left join pg_stat_user_tables st on st.relid = e.oid
    order by bloat desc
  `;
  return rows.map((r) => ({
    oid: r.oid,
    schema: r.schema,
    table: r.table,
    parent: r.parent,
    sizeBytes: Number(r.size),
    bloatBytes: Number(r.bloat),
    bloatRatio: Number(r.ratio),
    deadTuples: Number(r.dead),
    reusable: Number(r.dead_bytes) < Number(r.bloat) / 2,
  }));
}

export async function estimateIndexBloat(sql: Queryable): Promise<IndexBloat[]> {
  const rows = await sql<
    {
      schema: string;
      index: string;
      table: string;
      valid: boolean;
      size: string;
      bloat: string;
      ratio: number;
    }[]
  >`
    with idx as (
      select i.indexrelid, i.indisvalid, ic.relname as index, tc.relname as table, n.nspname,
             ic.relpages, ic.reltuples, current_setting('block_size')::int as bs,
             coalesce((select option_value::int from pg_options_to_table(ic.reloptions) where option_name = 'fillfactor'), 90) as ff,
             w.width, w.missing
      from pg_index i
      join pg_class ic on ic.oid = i.indexrelid and ic.relkind = 'i'
      join pg_class tc on tc.oid = i.indrelid
      join pg_namespace n on n.oid = ic.relnamespace
      join pg_am am on am.oid = ic.relam and am.amname = 'btree'
      cross join lateral (
        select sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) as width,
               count(*) filter (where s.avg_width is null) as missing
        from unnest(i.indkey::int2[]) as k(attnum)
        left join pg_attribute ta on ta.attrelid = i.indrelid and ta.attnum = k.attnum and k.attnum > 0
        left join pg_stats s on s.schemaname = n.nspname and s.tablename = tc.relname
                            and s.attname = ta.attname and not s.inherited
      ) w
      where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'
    ), est as (
      select *,
             -- index tuple header (8) + data aligned to 8, plus a line pointer; 16-byte btree special space; 1 meta page
             ceil(reltuples * (ceil((8 + width) / 8.0) * 8 + 4) / ((bs - 24 - 16) * ff / 100.0)) + 1 as expected
      from idx where missing = 0 and reltuples >= 0
    )
    select nspname as schema, index, "table", indisvalid as valid,
           (relpages::bigint * bs) as size,
           greatest(relpages - expected, 0)::bigint * bs as bloat,
           case when relpages = 0 then 0 else greatest(relpages - expected, 0)::float8 / relpages end as ratio
    from est
    order by bloat desc
  `;
  return rows.map((r) => ({
    schema: r.schema,
    index: r.index,
    table: r.table,
    valid: r.valid,
    sizeBytes: Number(r.size),
    bloatBytes: Number(r.bloat),
    bloatRatio: Number(r.ratio),
  }));
}
