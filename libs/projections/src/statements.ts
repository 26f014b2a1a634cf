import type { EventType } from '@spywatcher/events';
import type { Merge, Projection, Source, TableSpec, ValueSpec } from './projection.ts';

function mergeSql(table: string, column: string, spec: ValueSpec): string {
  switch (spec.merge) {
    case 'sum':
      return `${column} = ${table}.${column} + excluded.${column}`;
    case 'hours':
      return `${column} = sw_hours_add(${table}.${column}, excluded.${column})`;
    case 'bit_or':
      return `${column} = ${table}.${column} | excluded.${column}`;
    default:
      return `${column} = ${spec.merge}(${table}.${column}, excluded.${column})`;
  }
}

function sourceSelect(spec: TableSpec, source: Source, src: string, fillAll: boolean): string {
  const values = Object.keys(spec.values)
    .filter((c) => fillAll || c in source.values)
    .map((c) => {
      const value = source.values[c] ?? spec.values[c]!.empty;
      // The rebuild sums these again across event types: sum() over int keeps a bigint
      // accumulator, over bigint (what count(*) returns) a numeric one, several times slower and
      // larger. A count per key within one statement fits an int (a sum of values may not).
      return fillAll && spec.values[c]!.merge === 'sum' && value.startsWith('count(')
        ? `(${value})::int as ${c}`
        : `${value} as ${c}`;
    });
  return `select ${[...spec.keys.map((k) => `${source.keys[k]} as ${k}`), ...values].join(', ')}
from ${source.prepare ? source.prepare(src) : src} s ${source.from ?? ''} ${source.where ? `where ${source.where}` : ''}
group by ${spec.keys.map((_, i) => i + 1).join(', ')}`;
}

/** The Monday of the ISO week of a date expression, as a date (no time zone involved). */
export const mondayOf = (day: string) => `((${day}) - (extract(isodow from (${day}))::int - 1))`;

/** The weekly roll-up of `spec` as a table of its own: the same sources, keyed by week. */
export function weeklySpec(spec: TableSpec): TableSpec {
  const sources: TableSpec['sources'] = {};
  for (const [type, source] of Object.entries(spec.sources) as [EventType, Source][]) {
    sources[type] = { ...source, keys: { ...source.keys, day: mondayOf(source.keys.day!) } };
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
const AGGREGATE: Record<Merge, string> = {
  sum: 'sum',
  least: 'min',
  greatest: 'max',
  hours: 'max',
  bit_or: 'bit_or',
};

/** The ORDER BY writing a rebuilt table's rows in its clusterBy order (empty without one). */
const clusterOrder = (spec: TableSpec) =>
  spec.clusterBy ? `order by ${spec.clusterBy.map((k) => spec.keys.indexOf(k) + 1).join(', ')}` : '';

/**
 * The rebuild statement filling an empty weekly roll-up from its daily table (already rebuilt):
 * a few hundred thousand grouped rows instead of the event log once more.
 */
export function rollupStatement(spec: TableSpec, daily: string, weekly: string): string {
  const keys = spec.keys.map((k) => (k === 'day' ? `${mondayOf('day')} as day` : k));
  const values = Object.entries(spec.values).map(([c, v]) => `${AGGREGATE[v.merge]}(${c}) as ${c}`);
  return `insert into ${weekly} (${[...spec.keys, ...Object.keys(spec.values)].join(', ')})
select ${[...keys, ...values].join(', ')} from ${daily}
group by ${spec.keys.map((_, i) => i + 1).join(', ')} ${clusterOrder(spec)}`;
}

/** The live-batch statement folding events of `type` in `src` into `table` (live or `__next`). */
export function upsertStatement(spec: TableSpec, type: EventType, src: string, table: string): string {
  const source = spec.sources[type]!;
  const columns = [...spec.keys, ...Object.keys(spec.values).filter((c) => c in source.values)];
  const updates = Object.keys(source.values).map((c) => mergeSql(table, c, spec.values[c]!));
  return `insert into ${table} as ${table} (${columns.join(', ')})
${sourceSelect(spec, source, src, false)}
on conflict (${spec.keys.join(', ')}) do update set ${updates.join(', ')}`;
}

const finalAgg = (column: string, spec: ValueSpec) => {
  const fallback = spec.merge === 'hours' ? `array_fill(0, array[24])` : spec.empty;
  return `coalesce(${AGGREGATE[spec.merge]}(${column}), ${fallback}) as ${column}`;
};

/** The rebuild statement filling an empty `table` from every event type at once. */
export function bulkStatement(spec: TableSpec, srcOf: (type: EventType) => string, table: string): string {
  const parts = (Object.keys(spec.sources) as EventType[]).map((type) =>
    sourceSelect(spec, spec.sources[type]!, srcOf(type), true),
  );
  const values = Object.entries(spec.values).map(([c, v]) => finalAgg(c, v));
  const keys = spec.keys.map((_, i) => i + 1).join(', ');
  return `insert into ${table} (${[...spec.keys, ...Object.keys(spec.values)].join(', ')})
select ${[...spec.keys, ...values].join(', ')}
from (${parts.join('\nunion all\n')}) u
group by ${keys} ${clusterOrder(spec)}`;
}

/** Live-batch statements of a projection for one event type. */
export function applyStatements(
  projection: Projection,
  type: EventType,
  src: string,
  tableName: (base: string) => string,
): string[] {
  return tableSpecs(projection)
    .filter((t) => t.sources[type])
    .map((t) => upsertStatement(t, type, src, tableName(t.name)));
}
