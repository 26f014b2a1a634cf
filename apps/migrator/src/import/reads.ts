import type { DatabaseSync } from 'node:sqlite';
import { periodTable, UNDATED } from './bulk.ts';
import { type Row, safeColumnsSql, type TableSpec } from './tables.ts';

/** What one unit of work reads: a legacy table's rows after a key, in a period or id range. */
export interface UnitRange {
  after: string | null;
  /** Exclusive upper bound of an id range (null: none). */
  before: number | null;
  /** The partition period's start (epoch ms), null for the undated rows, undefined for an id range. */
  period?: number | null;
}

function bounds(spec: TableSpec, after: string | null, before: number | null) {
  const lower = after ?? (spec.keyType === 'int' ? Number.MIN_SAFE_INTEGER : '');
  return [spec.keyType === 'int' ? Number(lower) : lower, before ?? Number.MAX_SAFE_INTEGER] as const;
}

/**
 * The rows of a unit in id order, one at a time (never a table in memory). A connection reading
 * periods has the period index attached (bulk.ts, attachPeriodIndex).
 */
export function selectRows(db: DatabaseSync, spec: TableSpec, range: UnitRange): Iterator<Row> {
  const { after, before, period } = range;
  if (period !== undefined && spec.kind === 'event') {
    // Rows with integers past 2^53 are all in the undated period (bulk.ts), read with care.
    const columns = period === null ? safeColumnsSql(spec, 't.') : 't.*';
    const stmt = db.prepare(
      `select ${columns} from ${periodTable(spec)} q join "${spec.legacy}" t on t.id = q.id where q.p = ? and q.id > ? order by q.id`,
    );
    return stmt.iterate(period ?? UNDATED, Number(after ?? Number.MIN_SAFE_INTEGER)) as Iterator<Row>;
  }
  const upper = spec.keyType === 'int' ? ' and id < ?' : '';
  const columns = spec.kind === 'event' ? safeColumnsSql(spec, '') : '*';
  const stmt = db.prepare(`select ${columns} from "${spec.legacy}" where id > ?${upper} order by id`);
  // Reference tables are small: integers as BigInt (Guild.permissions exceeds 2^53).
  if (spec.kind === 'reference') stmt.setReadBigInts(true);
  const [lo, hi] = bounds(spec, after, before);
  return (spec.keyType === 'int' ? stmt.iterate(lo, hi) : stmt.iterate(lo)) as Iterator<Row>;
}

export function countRows(db: DatabaseSync, spec: TableSpec, range: UnitRange): number {
  const { after, before, period } = range;
  if (period !== undefined) {
    const stmt = db.prepare(`select count(*) as n from ${periodTable(spec)} where p = ? and id > ?`);
    return stmt.get(period ?? UNDATED, Number(after ?? Number.MIN_SAFE_INTEGER))!.n as number;
  }
  const upper = spec.keyType === 'int' ? ' and id < ?' : '';
  const stmt = db.prepare(`select count(*) as n from "${spec.legacy}" where id > ?${upper}`);
  const [lo, hi] = bounds(spec, after, before);
  return (spec.keyType === 'int' ? stmt.get(lo, hi) : stmt.get(lo))!.n as number;
}
