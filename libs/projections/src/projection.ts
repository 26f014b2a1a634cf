import type { Fragment, Queryable } from '@spywatcher/db';
import type { EventType } from '@spywatcher/events';

/**
 * A piece of SQL a declaration holds: built for the connection that runs the statement (no
 * connection at import time), as a postgres.js fragment (identifiers through `sql(name)`, values
 * as parameters). Written with the `sqlPart` tag.
 */
export interface SqlPart {
  (sql: Queryable): Fragment;
  /** A `count(*)` (see `count`): the rebuild sums these as int. */
  readonly isCount?: boolean;
}

/** What a `sqlPart` template may interpolate: other parts, a built fragment, or a value (a parameter). */
type PartValue = SqlPart | Fragment | string | number;

/**
 * A tagged template declaring a SqlPart: `sqlPart\`count(*) filter (where ${cond})\`` is the
 * fragment `sql\`count(*) filter (where ${cond(sql)})\`` once a connection builds it.
 */
export function sqlPart(strings: TemplateStringsArray, ...values: readonly PartValue[]): SqlPart {
  return (sql) => sql(strings, ...values.map((v) => (typeof v === 'function' ? v(sql) : v)));
}

/** An identifier (`sql(name)`), e.g. a column, as a part. */
export const identifier =
  (name: string): SqlPart =>
  (sql) =>
    sql`${sql(name)}`;

/** `count(*)`, or `count(*) filter (where …)`: an int per group that the rebuild need not sum as bigint. */
export function count(where?: SqlPart): SqlPart {
  const part: SqlPart = where ? sqlPart`count(*) filter (where ${where})` : sqlPart`count(*)`;
  return Object.assign((sql: Queryable) => part(sql), { isCount: true });
}

/**
 * A projection declares, per read-model table, its key columns, how each value column merges,
 * and for each event type it reads how a set of events maps to (key, values) groups. From that
 * one declaration the runner derives both statements it needs:
 * - a live batch: per event type, one INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE;
 * - a rebuild: per table, one INSERT of the grouped UNION ALL of every event type into an empty
 *   table (no conflicts to resolve, indexes built afterwards).
 * Every value is a sum/min/max/element-wise sum/bitwise or, so batches may be applied in any order or split,
 * which is what lets the runner keep one checkpoint per event type.
 */
export type Merge = 'sum' | 'least' | 'greatest' | 'hours' | 'bit_or';

export interface ValueSpec {
  merge: Merge;
  /** The value a source that does not fill this column contributes. */
  empty: SqlPart;
  /** The column's type; every column is NOT NULL. No parameters (DDL takes none). */
  type: SqlPart;
  /** The column's default, if it has one. No parameters (DDL takes none). */
  default?: SqlPart;
}

export interface Source {
  /** Expression per key column, over the event row aliased `s`. */
  keys: Record<string, SqlPart>;
  /** Aggregate expression per value column filled by this source. */
  values: Record<string, SqlPart>;
  /** Extra FROM items (joins, laterals) after `src s`. */
  from?: SqlPart;
  where?: SqlPart;
  /**
   * Replaces the source subquery `src` (the events of a batch or a rebuild chunk), e.g. to
   * pre-aggregate before an expensive expression.
   */
  prepare?: (src: Fragment) => SqlPart;
}

export interface TableSpec {
  name: string;
  /** The primary key, in this order. */
  keys: readonly string[];
  /** The type of each key column (e.g. sqlPart`text collate "C"`). */
  keyTypes: Record<string, SqlPart>;
  values: Record<string, ValueSpec>;
  sources: Partial<Record<EventType, Source>>;
  /**
   * Leading key columns the rebuild writes rows in order of (guild and day): an endpoint's guild
   * and window is then a few contiguous pages instead of rows scattered in hash order. Left out
   * where the queries read few rows anyway (the sort costs rebuild time).
   */
  clusterBy?: readonly string[];
  /**
   * A weekly roll-up of this table: same columns, `day` holding the Monday of the ISO week (UTC).
   * A window's whole weeks are read from it and only its edge days from the daily table, about
   * half the rows for a 28-day window. Sum, least, greatest and bit_or merges only.
   */
  weekly?: string;
  /**
   * work_mem of this table's rebuild statements, where more than the server's setting pays
   * (see bulkSettings in rebuild.ts).
   */
  bulkWorkMem?: string;
  /** Secondary indexes (btree) by name suffix: `{ day_idx: ['day', 'guild_id'] }` is `<table>_day_idx`. */
  indexes?: Record<string, readonly string[]>;
  /** CHECK constraints by name suffix: `{ scope_check: sqlPart\`scope in (…)\` }` is `<table>_scope_check`. */
  checks?: Record<string, SqlPart>;
}

export interface Projection {
  name: string;
  description: string;
  /**
   * The version of the read model: raise it with every change to its tables or to what their
   * rows mean (a source expression, a new event type). A change of the declared shape is noticed
   * without it too; either way the runner rebuilds the projection into fresh tables and swaps
   * them in (see schema.ts). Only the version tells an older instance to leave them alone.
   */
  version: number;
  /**
   * Roles granted SELECT on the tables the engine creates. A table a rebuild replaces keeps the
   * privileges of the one before it instead.
   */
  readers?: readonly string[];
  tables: readonly TableSpec[];
  types: readonly EventType[];
}
