import type { DatabaseSync } from 'node:sqlite';
import { buildBatch } from './batch.ts';
import type { Checkpoint } from './checkpoints.ts';
import type { ConvertPool, UnitBatches } from './convert-pool.ts';
import type { Unit } from './plan.ts';
import { selectRows } from './reads.ts';
import type { ConvertContext } from './tables.ts';

export interface BatchSource {
  /** The legacy file's connection (with the period index attached when units are periods). */
  db: DatabaseSync;
  /** Conversion workers for the event tables; null converts on this thread. */
  pool: ConvertPool | null;
  ctx: ConvertContext;
  /** Rows a batch. */
  limit: number;
  /** COPY lines are made unless it is a dry run. */
  withCopy: boolean;
}

/**
 * The batches of a unit from its checkpoint on: an event table's read and converted ahead by a
 * worker, a reference table's (a few thousand rows) on this thread.
 */
export function unitBatches(s: BatchSource, unit: Unit, cp: Checkpoint): UnitBatches {
  const { spec } = unit;
  const range = { after: cp.lastKey ?? unit.after, before: unit.before, period: unit.period };
  if (spec.kind === 'event' && s.pool) return s.pool.open(spec.legacy, range, s.limit, s.withCopy);
  const rows = selectRows(s.db, spec, range);
  return {
    next: async () => buildBatch(spec, rows, s.limit, s.ctx, s.withCopy),
    close: () => rows.return?.(),
  };
}
