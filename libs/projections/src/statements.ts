import { type Fragment, identifiers, join, type Queryable } from '@spywatcher/db';
import type { EventType } from '@spywatcher/events';
import type { Merge, Projection, Source, TableSpec, ValueSpec } from './projection.ts';

/**
 * Output-column positions for GROUP BY and ORDER BY. SQL text, not parameters: a parameter there
 * would be a constant to group by.
 */
const POSITIONS = (sql: Queryable) => [sql`1`, sql`2`, sql`3`, sql`4`, sql`5`, sql`6`, sql`7`, sql`8`];

function position(sql: Queryable, n: number): Fragment {
  const p = POSITIONS(sql)[n - 1];
  if (!p) throw new Error(`a read-model table has at most 8 key columns, not ${n}`);
  return p;
}

/** `1, 2, …, n`: the key columns, which lead every select. */
const keyPositions = (sql: Queryable, spec: TableSpec) =>
  join(
    sql,
    spec.keys.map((_, i) => position(sql, i + 1)),
  );

function mergeSql(sql: Queryable, table: string, column: string, spec: ValueSpec): Fragment {
  const [t, c] = [sql(table), sql(column)];
  switch (spec.merge) {
    case 'sum':
      return sql`${c} = ${t}.${c} + excluded.${c}`;
    case 'hours':
      return sql`${c} = sw_hours_add(${t}.${c}, excluded.${c})`;
    case 'bit_or':
      return sql`${c} = ${t}.${c} | excluded.${c}`;
    case 'least':
      return sql`${c} = least(${t}.${c}, excluded.${c})`;
    case 'greatest':
      return sql`${c} = greatest(${t}.${c}, excluded.${c})`;
  }
}

function sourceSelect(
  sql: Queryable,
  spec: TableSpec,
  source: Source,
  src: Fragment,
  fillAll: boolean,
): Fragment {
  const values = Object.keys(spec.values)
    .filter((c) => fillAll || c in source.values)
    .map((c) => {
      const value = source.values[c] ?? spec.values[c]!.empty;
      // The rebuild sums these again across event types: sum() over int keeps a bigint
      // accumulator, over bigint (what count(*) returns) a numeric one, several times slower and
      // larger. A count per key within one statement fits an int (a sum of values may not).
      return fillAll && spec.values[c]!.merge === 'sum' && value.isCount
        ? sql`(${value(sql)})::int as ${sql(c)}`
        : sql`${value(sql)} as ${sql(c)}`;
    });
  const keys = spec.keys.map((k) => sql`${source.keys[k]!(sql)} as ${sql(k)}`);
  return sql`select ${join(sql, [...keys, ...values])}
from ${source.prepare ? source.prepare(src)(sql) : src} s ${source.from ? source.from(sql) : sql``} ${source.where ? sql`where ${source.where(sql)}` : sql``}
group by ${keyPositions(sql, spec)}`;
}

/** The Monday of the ISO week of a date expression, as a date (no time zone involved). */
export const mondayOf = (sql: Queryable, day: Fragment) =>
  sql`((${day}) - (extract(isodow from (${day}))::int - 1))`;

/** The weekly roll-up of `spec` as a table of its own: the same sources, keyed by week. */
export function weeklySpec(spec: TableSpec): TableSpec {
  const sources: TableSpec['sources'] = {};
  for (const [type, source] of Object.entries(spec.sources) as [EventType, Source][]) {
    const day = source.keys.day!;
    sources[type] = { ...source, keys: { ...source.keys, day: (sql) => mondayOf(sql, day(sql)) } };
  }
  // Same columns, key, indexes and checks; filled from the daily table in a rebuild.
  return { ...spec, name: spec.weekly!, sources, weekly: undefined, bulkWorkMem: undefined };
}

/** Every table a projection writes: its tables and their weekly roll-ups. */
export function tableSpecs(projection: Projection): TableSpec[] {
  return projection.tables.flatMap((t) => (t.weekly ? [t, weeklySpec(t)] : [t]));
}

/** The names of every table a projection writes. */
export function projectionTables(projection: Projection): string[] {
  return tableSpecs(projection).map((t) => t.name);
}

/**
 * The aggregate that combines rows of a value column. 'hours' columns are filled by exactly one
 * event type each, so in a rebuild max() picks that one array (roll-ups have no 'hours' columns).
 */
function aggregate(sql: Queryable, merge: Merge, column: string): Fragment {
  const c = sql(column);
  switch (merge) {
    case 'sum':
      return sql`sum(${c})`;
    case 'least':
      return sql`min(${c})`;
    case 'greatest':
    case 'hours':
      return sql`max(${c})`;
    case 'bit_or':
      return sql`bit_or(${c})`;
  }
}

/** The ORDER BY writing a rebuilt table's rows in its clusterBy order (empty without one). */
const clusterOrder = (sql: Queryable, spec: TableSpec) =>
  spec.clusterBy
    ? sql`order by ${join(
        sql,
        spec.clusterBy.map((k) => position(sql, spec.keys.indexOf(k) + 1)),
      )}`
    : sql``;

/** Every column of `spec`'s table: keys, then values. */
const allColumns = (spec: TableSpec) => [...spec.keys, ...Object.keys(spec.values)];

/**
 * The rebuild statement filling an empty weekly roll-up from its daily table (already rebuilt):
 * a few hundred thousand grouped rows instead of the event log once more.
 */
export function rollupStatement(sql: Queryable, spec: TableSpec, daily: string, weekly: string): Fragment {
  const keys = spec.keys.map((k) => (k === 'day' ? sql`${mondayOf(sql, sql`day`)} as day` : sql`${sql(k)}`));
  const values = Object.entries(spec.values).map(([c, v]) => sql`${aggregate(sql, v.merge, c)} as ${sql(c)}`);
  return sql`insert into ${sql(weekly)} (${identifiers(sql, allColumns(spec))})
select ${join(sql, [...keys, ...values])} from ${sql(daily)}
group by ${keyPositions(sql, spec)} ${clusterOrder(sql, spec)}`;
}

/** The live-batch statement folding events of `type` in `src` into `table` (live or `__next`). */
export function upsertStatement(
  sql: Queryable,
  spec: TableSpec,
  type: EventType,
  src: Fragment,
  table: string,
): Fragment {
  const source = spec.sources[type]!;
  const columns = [...spec.keys, ...Object.keys(spec.values).filter((c) => c in source.values)];
  const updates = Object.keys(source.values).map((c) => mergeSql(sql, table, c, spec.values[c]!));
  return sql`insert into ${sql(table)} as ${sql(table)} (${identifiers(sql, columns)})
${sourceSelect(sql, spec, source, src, false)}
on conflict (${identifiers(sql, spec.keys)}) do update set ${join(sql, updates)}`;
}

const finalAgg = (sql: Queryable, column: string, spec: ValueSpec) => {
  const fallback = spec.merge === 'hours' ? sql`array_fill(0, array[24])` : spec.empty(sql);
  return sql`coalesce(${aggregate(sql, spec.merge, column)}, ${fallback}) as ${sql(column)}`;
};

/** The rebuild statement filling an empty `table` from every event type at once. */
export function bulkStatement(
  sql: Queryable,
  spec: TableSpec,
  srcOf: (type: EventType) => Fragment,
  table: string,
): Fragment {
  const parts = (Object.keys(spec.sources) as EventType[]).map((type) =>
    sourceSelect(sql, spec, spec.sources[type]!, srcOf(type), true),
  );
  const values = Object.entries(spec.values).map(([c, v]) => finalAgg(sql, c, v));
  return sql`insert into ${sql(table)} (${identifiers(sql, allColumns(spec))})
select ${join(sql, [...spec.keys.map((k) => sql`${sql(k)}`), ...values])}
from (${join(sql, parts, sql`\nunion all\n`)}) u
group by ${keyPositions(sql, spec)} ${clusterOrder(sql, spec)}`;
}

/** Live-batch statements of a projection for one event type. */
export function applyStatements(
  sql: Queryable,
  projection: Projection,
  type: EventType,
  src: Fragment,
  tableName: (base: string) => string,
): Fragment[] {
  return tableSpecs(projection)
    .filter((t) => t.sources[type])
    .map((t) => upsertStatement(sql, t, type, src, tableName(t.name)));
}
