import { type Fragment, identifiers, join, type Queryable, type Sql, withTransaction } from '@spywatcher/db';
import { grantSelect } from './grants.ts';
import type { Projection, TableSpec } from './projection.ts';
import { tableSpecs } from './statements.ts';
import { lockKey } from './tail.ts';

/**
 * A projection owns its tables: their shape is the declaration (TableSpec), not a migration.
 * Before tailing, the runner compares what is in the database with what is declared:
 * - `current`: the tables have the declared shape and were built at the declared version;
 * - `created`: none of the tables existed; they were created empty (the tail starts from the
 *   beginning of the log);
 * - `adopted`: no version was recorded yet (tables a migration created) and their shape is the
 *   declared one: the declared version is recorded, nothing else changes;
 * - `rebuild`: the shape differs, or the recorded version is older than the declared one: the
 *   projection must be rebuilt into fresh tables (rebuild.ts creates them from the declaration
 *   and swaps them in);
 * - `newer`: the recorded version is newer than the declared one: this process runs an older
 *   declaration (a rolling deploy) and must neither tail nor rebuild the tables.
 */
export type TablesState = 'current' | 'created' | 'adopted' | 'rebuild' | 'newer';

/** CREATE TABLE for `spec` under the name `table`: columns and checks (keys and indexes apart). */
export function createTableStatement(sql: Queryable, spec: TableSpec, table: string): Fragment {
  const columns = [
    ...spec.keys.map((k) => sql`${sql(k)} ${spec.keyTypes[k]!(sql)} not null`),
    ...Object.entries(spec.values).map(
      ([c, v]) =>
        sql`${sql(c)} ${v.type(sql)} not null${v.default === undefined ? sql`` : sql` default ${v.default(sql)}`}`,
    ),
    ...Object.entries(spec.checks ?? {}).map(
      ([suffix, check]) => sql`constraint ${sql(`${spec.name}_${suffix}`)} check (${check(sql)})`,
    ),
  ];
  return sql`create table ${sql(table)} (${join(sql, columns)})`;
}

/**
 * The statements building the primary key and indexes of `spec` on `table`, one list per index
 * (run in order; lists may run side by side). Index names are the declared ones plus `suffix`
 * (a rebuild builds `<name>__next` and renames them at the swap).
 */
export function indexStatements(sql: Queryable, spec: TableSpec, table: string, suffix = ''): Fragment[][] {
  const pkey = sql(`${spec.name}_pkey${suffix}`);
  return [
    [
      sql`create unique index ${pkey} on ${sql(table)} (${identifiers(sql, spec.keys)})`,
      sql`alter table ${sql(table)} add constraint ${pkey} primary key using index ${pkey}`,
    ],
    ...Object.entries(spec.indexes ?? {}).map(([name, columns]) => [
      sql`create index ${sql(`${spec.name}_${name}${suffix}`)} on ${sql(table)} (${identifiers(sql, columns)})`,
    ]),
  ];
}

/** Creates `spec`'s table under the name `table` with its key and indexes. */
async function createTable(tx: Queryable, spec: TableSpec, table: string): Promise<void> {
  await createTableStatement(tx, spec, table);
  for (const statements of indexStatements(tx, spec, table)) {
    for (const statement of statements) await statement;
  }
}

/**
 * A table's shape as the catalog has it, with names left out (column order, index and
 * constraint names): the same declaration gives the same text whether a migration or this
 * module created the table, and PostgreSQL spells types, defaults and checks its own way.
 */
interface Shape {
  table: string;
  shape: string | null;
}

async function describeTables(tx: Queryable, schema: string, tables: readonly string[]): Promise<Shape[]> {
  return tx<Shape[]>`
    select t.name as table, (
      select json_build_object(
        'columns', (
          select json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod), co.collname,
              a.attnotnull, pg_get_expr(d.adbin, d.adrelid)) order by a.attname)
          from pg_attribute a
          left join pg_collation co on co.oid = a.attcollation
          left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
          where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped),
        'constraints', (
          select json_agg(pg_get_constraintdef(k.oid) order by pg_get_constraintdef(k.oid))
          from pg_constraint k where k.conrelid = c.oid),
        'indexes', (
          select json_agg(x.def order by x.def) from (
            select regexp_replace(pg_get_indexdef(i.indexrelid), '^CREATE (UNIQUE )?INDEX \\S+ ON \\S+ ',
              'CREATE \\1INDEX ON ') as def
            from pg_index i where i.indrelid = c.oid) x)
      )::text
      from pg_class c
      where c.relname = t.name and c.relnamespace = ${schema}::regnamespace and c.relkind = 'r'
    ) as shape
    from unnest(${tables as string[]}::text[]) with ordinality as t(name, n)
    order by t.n
  `;
}

/**
 * The shape the declaration gives, read from the catalog after creating the tables as temporary
 * ones in a transaction that is rolled back.
 */
async function declaredShapes(sql: Sql, specs: readonly TableSpec[]): Promise<Shape[]> {
  const conn = await sql.reserve();
  try {
    await conn`begin`;
    try {
      for (const spec of specs) await createTable(conn, spec, `pg_temp.${spec.name}`);
      const [temp] = await conn<
        { schema: string }[]
      >`select pg_my_temp_schema()::regnamespace::text as schema`;
      return await describeTables(
        conn,
        temp!.schema,
        specs.map((s) => s.name),
      );
    } finally {
      await conn`rollback`;
    }
  } finally {
    conn.release();
  }
}

const sameShapes = (a: readonly Shape[], b: readonly Shape[]) =>
  a.length === b.length && a.every((x, i) => x.table === b[i]!.table && x.shape === b[i]!.shape);

/**
 * Brings a projection's tables to the declaration where that needs no rebuild (see TablesState):
 * creates them when none exists, records the version of tables that already have the declared
 * shape. Holds the projection's lock, so live batches and a rebuild's swap wait meanwhile and two
 * runners starting together do not both create.
 */
export async function prepareTables(sql: Sql, projection: Projection): Promise<TablesState> {
  const specs = tableSpecs(projection);
  const declared = await declaredShapes(sql, specs);
  return withTransaction(sql, async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext(${lockKey(projection.name)}))`;
    const [schema] = await tx<{ name: string }[]>`select current_schema() as name`;
    const live = await describeTables(
      tx,
      schema!.name,
      specs.map((s) => s.name),
    );
    const version = await recordedVersion(tx, projection.name);
    if (version !== undefined && version > projection.version) return 'newer';
    if (live.every((t) => t.shape === null)) {
      for (const spec of specs) {
        await createTable(tx, spec, spec.name);
        await grantSelect(tx, spec.name, projection.readers ?? []);
      }
      // Positions left from tables that are gone would skip the events they held.
      await tx`delete from projection_checkpoints where projection = ${projection.name}`;
      await recordVersion(tx, projection);
      return 'created';
    }
    if (!sameShapes(live, declared)) return 'rebuild';
    if (version === undefined) {
      await recordVersion(tx, projection);
      return 'adopted';
    }
    return version === projection.version ? 'current' : 'rebuild';
  });
}

/** The version a projection's tables were last built or adopted at, if any. */
export async function recordedVersion(sql: Queryable, name: string): Promise<number | undefined> {
  const [row] = await sql<
    { version: number }[]
  >`select version from projection_schemas where projection = ${name}`;
  return row?.version;
}

/** Records that the projection's tables are those of its declared version. */
export async function recordVersion(tx: Queryable, projection: Projection): Promise<void> {
  await tx`
    insert into projection_schemas (projection, version) values (${projection.name}, ${projection.version})
    on conflict (projection) do update set version = excluded.version, updated_at = now()
  `;
}
