import type { EventType } from '@spywatcher/db';

/**
 * A projection declares, per read-model table, its key columns, how each value column merges,
 * and for each event type it reads how a set of events maps to (key, values) groups. From that
 * one declaration the runner derives both statements it needs:
 * - a live batch: per event type, one INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE;
 * - a rebuild: per table, one INSERT of the grouped UNION ALL of every event type into an empty
 *   table (no conflicts to resolve, indexes built afterwards).
 * Every value is a sum/min/max/element-wise sum, so batches may be applied in any order or split,
 * which is what lets the runner keep one checkpoint per event type.
 */
export type Merge = 'sum' | 'least' | 'greatest' | 'hours';

export interface ValueSpec {
  merge: Merge;
  /** The value a source that does not fill this column contributes (SQL). */
  empty: string;
}

export interface Source {
  /** SQL expression per key column, over the event row aliased `s`. */
  keys: Record<string, string>;
  /** Aggregate expression per value column filled by this source. */
  values: Record<string, string>;
  /** Extra FROM items (joins, laterals) after `src s`. */
  from?: string;
  where?: string;
  /** Replaces the source subquery (e.g. to pre-aggregate before an expensive expression). */
  prepare?: (src: string) => string;
}

export interface TableSpec {
  name: string;
  keys: readonly string[];
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
   * half the rows for a 28-day window. Sum, least and greatest merges only.
   */
  weekly?: string;
  /**
   * work_mem of this table's rebuild statements, where more than the server's setting pays
   * (see bulkSettings in rebuild.ts).
   */
  bulkWorkMem?: string;
}

export interface Projection {
  name: string;
  description: string;
  tables: readonly TableSpec[];
  types: readonly EventType[];
}
