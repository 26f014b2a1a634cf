import type { Queryable } from '../client.ts';

/** A function whose results are stored: replacing its body leaves those values stale. */
export interface StoredFunction {
  /** `name(argument types)`, as `regprocedure` prints it. */
  signature: string;
  /** md5 of `pg_get_functiondef`: the whole definition, body and attributes. */
  definition: string;
  /** The objects that store its results: generated columns and defaults, indexes, check constraints. */
  dependents: string[];
}

/**
 * The functions behind generated columns, column defaults, index expressions and check
 * constraints (partitions fold into their parent), and every function those call. PostgreSQL
 * records only the direct use, so calls from one function to another are found in the body by
 * name (`name(`) as well as in pg_depend (`begin atomic` bodies).
 */
export async function storedFunctions(sql: Queryable): Promise<StoredFunction[]> {
  return sql<StoredFunction[]>`
    with recursive fns as (
      select p.oid, p.proname, p.prosrc
      from pg_proc p
      join pg_namespace n on n.oid = p.pronamespace
      where n.nspname not in ('pg_catalog', 'information_schema') and p.prokind in ('f', 'p')
        and not exists (
          select 1 from pg_depend e
          where e.classid = 'pg_proc'::regclass and e.objid = p.oid and e.deptype = 'e')
    ),
    direct (fn, dependent) as (
      select d.refobjid, format('column %s.%I', c.oid::regclass, a.attname)
      from pg_depend d
      join pg_attrdef ad on ad.oid = d.objid
      join pg_class c on c.oid = ad.adrelid and not c.relispartition
      join pg_attribute a on a.attrelid = ad.adrelid and a.attnum = ad.adnum
      where d.classid = 'pg_attrdef'::regclass and d.refclassid = 'pg_proc'::regclass
      union all
      select d.refobjid, format('index %s', c.oid::regclass)
      from pg_depend d
      join pg_class c on c.oid = d.objid and c.relkind in ('i', 'I') and not c.relispartition
      where d.classid = 'pg_class'::regclass and d.refclassid = 'pg_proc'::regclass
      union all
      select d.refobjid, format('constraint %I on %s', co.conname, c.oid::regclass)
      from pg_depend d
      join pg_constraint co on co.oid = d.objid
      join pg_class c on c.oid = co.conrelid and not c.relispartition
      where d.classid = 'pg_constraint'::regclass and d.refclassid = 'pg_proc'::regclass
    ),
    closure (fn, dependent) as (
      select fn, dependent from direct where fn in (select oid from fns)
      union
      select callee.oid, closure.dependent
      from closure
      join fns caller on caller.oid = closure.fn
      join fns callee on callee.oid <> caller.oid and (
        caller.prosrc ~* ('\\m' || callee.proname || '\\M\\s*\\(')
        or exists (
          select 1 from pg_depend pd
          where pd.classid = 'pg_proc'::regclass and pd.objid = caller.oid
            and pd.refclassid = 'pg_proc'::regclass and pd.refobjid = callee.oid))
    )
    select fn::regprocedure::text as signature,
           md5(pg_get_functiondef(fn)) as definition,
           array_agg(distinct dependent order by dependent) as dependents
    from closure
    group by fn
    order by 1
  `;
}

/** The functions of `before` whose definition differs now (or that are gone). */
export async function changedStoredFunctions(
  sql: Queryable,
  before: StoredFunction[],
): Promise<StoredFunction[]> {
  if (before.length === 0) return [];
  const now = await sql<{ signature: string; definition: string | null }[]>`
    select s as signature, md5(pg_get_functiondef(to_regprocedure(s))) as definition
    from unnest(${before.map((f) => f.signature)}::text[]) s
  `;
  const definitions = new Map(now.map((f) => [f.signature, f.definition]));
  return before.filter((f) => definitions.get(f.signature) !== f.definition);
}
