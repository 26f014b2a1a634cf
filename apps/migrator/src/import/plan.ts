import { attachPeriodIndex, PeriodIndex } from './bulk.ts';
import type { Checkpoint } from './checkpoints.ts';
import { countRows } from './reads.ts';
import type { LegacySource } from './source.ts';
import { TABLE_SPECS, type TableSpec } from './tables.ts';

/** Event tables are imported in id ranges of this size, each with its own checkpoint. */
export const RANGE = 100_000;

/** One piece of work with its own checkpoint. */
export interface Unit {
  spec: TableSpec;
  /** Checkpoint key: the legacy table, `<table>@<yyyymmdd>` for an event table's period,
   * `<table>#undated` for its rows without a valid date, or `<table>#<range>` for an id range. */
  key: string;
  /** Exclusive bounds of the range (null: unbounded). */
  after: string | null;
  before: number | null;
  /** Event tables (not in a dry run): the partition period's start (epoch ms), or null for rows
   * without a valid date (they are rejected). */
  period?: number | null;
  rows: number;
}

const periodKey = (start: number) => new Date(start).toISOString().slice(0, 10).replaceAll('-', '');

/**
 * What is left to read: one unit per reference table; per event table, one per partition period
 * (or, without `periodsFile`, as in a dry run, per id range) and one for rows without a valid
 * date. With `periodsFile`, the legacy tables are indexed by month into that scratch file first
 * (bulk.ts, PeriodIndex), and the source connection attaches it to read periods.
 */
export function planUnits(
  source: LegacySource,
  checkpoints: Map<string, Checkpoint>,
  periodsFile: string | null,
): Unit[] {
  const periods = periodsFile === null ? null : new PeriodIndex(source.path, periodsFile);
  try {
    if (periodsFile !== null) attachPeriodIndex(source.db, periodsFile);
    return TABLE_SPECS.flatMap((spec) => unitsOf(source, spec, checkpoints, periods));
  } finally {
    periods?.close();
  }
}

function unitsOf(
  source: LegacySource,
  spec: TableSpec,
  checkpoints: Map<string, Checkpoint>,
  periods: PeriodIndex | null,
): Unit[] {
  if (spec.kind === 'reference') {
    const after = checkpoints.get(spec.legacy)?.lastKey ?? null;
    return [
      {
        spec,
        key: spec.legacy,
        after,
        before: null,
        rows: countRows(source.db, spec, { after, before: null }),
      },
    ];
  }
  const units: Unit[] = [];
  if (periods) {
    const starts = [...periods.index(spec, 'month').keys()].sort((a, b) => a - b);
    for (const start of [...starts, null]) {
      const key = start === null ? `${spec.legacy}#undated` : `${spec.legacy}@${periodKey(start)}`;
      const after = checkpoints.get(key)?.lastKey ?? null;
      const rows = countRows(source.db, spec, { after, before: null, period: start });
      if (rows > 0 || checkpoints.has(key))
        units.push({ spec, key, after, before: null, period: start, rows });
    }
    return units;
  }
  const span = source.db.prepare(`select min(id) as lo, max(id) as hi from "${spec.legacy}"`).get() as {
    lo: number | null;
    hi: number | null;
  };
  if (span.lo === null || span.hi === null) return units;
  for (let k = Math.floor(span.lo / RANGE); k <= Math.floor(span.hi / RANGE); k++) {
    const key = `${spec.legacy}#${k}`;
    const after = checkpoints.get(key)?.lastKey ?? String(k * RANGE - 1);
    const before = (k + 1) * RANGE;
    units.push({ spec, key, after, before, rows: countRows(source.db, spec, { after, before }) });
  }
  return units;
}

/** Relative PostgreSQL cost of a row, to start the costliest table first. */
const costOf = (spec: TableSpec) => (spec.legacy === 'MessageEvent' ? 8 : 1);

/**
 * The order units run in: the reference tables one at a time, in their declared order (users
 * before the guilds that point at them); then the event units in parallel lanes, costliest first
 * (message rows compute a tsvector and feed a GIN index), so PostgreSQL works on several periods
 * at once and no table is left alone at the end.
 */
export function schedule(units: readonly Unit[]): { reference: Unit[]; events: Unit[] } {
  return {
    reference: units.filter((u) => u.spec.kind === 'reference'),
    events: units
      .filter((u) => u.spec.kind === 'event')
      .sort((a, b) => b.rows * costOf(b.spec) - a.rows * costOf(a.spec)),
  };
}
