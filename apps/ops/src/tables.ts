import { type Queryable, quoteIdent, type Sql } from '@spywatcher/db';

/** `"schema"."name"` for an identifier pair read from the catalog (never from a request). */
export function qualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/**
 * Tables that hold rows: plain tables and leaf partitions outside the system schemas, without
 * tables owned by extensions (their contents come with CREATE EXTENSION, not with the dump).
 */
export async function dataTables(sql: Queryable): Promise<{ schema: string; name: string }[]> {
  return sql<{ schema: string; name: string }[]>`
    select n.nspname as schema, c.relname as name
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'r'
      and n.nspname not in ('pg_catalog', 'information_schema')
      and n.nspname !~ '^pg_(toast|temp)'
      and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
    order by 1, 2
  `;
}

/** Exact row count of every data table, keyed `schema.table`. */
export async function exactRowCounts(sql: Queryable): Promise<Record<string, number>> {
  const tables = await dataTables(sql);
  const counts: Record<string, number> = {};
  // one statement for all tables: a round trip per partition adds up on a log with hundreds
  for (let i = 0; i < tables.length; i += 200) {
    const chunk = tables.slice(i, i + 200);
    const query = chunk
      .map((t, j) => `select ${j} as i, count(*)::bigint as n from ${qualified(t.schema, t.name)}`)
      .join(' union all ');
    const rows = await sql.unsafe<{ i: number; n: string }[]>(query);
    for (const r of rows) {
      const t = chunk[r.i]!;
      counts[`${t.schema}.${t.name}`] = Number(r.n);
    }
  }
  return counts;
}

/**
 * Runs amcheck's bt_index_check on every valid B-tree index (partitioned parents have no
 * storage of their own; their partitions' indexes are checked). Returns the failures.
 */
export async function checkBtreeIndexes(
  sql: Sql,
  onProgress?: (done: number, total: number) => void,
): Promise<{ checked: number; failures: { index: string; error: string }[] }> {
  await sql`create extension if not exists amcheck`;
  const indexes = await sql<{ oid: number; name: string }[]>`
    select c.oid::int as oid, n.nspname || '.' || c.relname as name
    from pg_index i
    join pg_class c on c.oid = i.indexrelid
    join pg_namespace n on n.oid = c.relnamespace
    join pg_am a on a.oid = c.relam
    where c.relkind = 'i' and a.amname = 'btree' and i.indisvalid and i.indisready
      and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_toast'
    order by 2
  `;
  const failures: { index: string; error: string }[] = [];
  let done = 0;
  for (const idx of indexes) {
    try {
      await sql`select bt_index_check(${idx.oid}::oid::regclass, false)`;
    } catch (error) {
      failures.push({ index: idx.name, error: (error as Error).message });
    }
    done += 1;
    onProgress?.(done, indexes.length);
  }
  return { checked: indexes.length, failures };
}
