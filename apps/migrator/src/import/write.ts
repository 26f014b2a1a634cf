import {
  copyRows,
  ensurePartitions,
  isMissingPartitionError,
  markPartitionsImported,
  type PartitionCache,
  type Sql,
  stageRows,
  type TransactionSql,
} from '@spywatcher/db';
import type { Batch } from './batch.ts';
import { BulkUnavailable, importTarget, loadPeriod } from './bulk.ts';
import { advance, type Checkpoint, saveCheckpoint } from './checkpoints.ts';
import type { UnitBatches } from './convert-pool.ts';
import type { Unit } from './plan.ts';
import type { Rejects, TableProgress } from './report.ts';
import type { Column, TableSpec } from './tables.ts';

const DAY = 86_400_000;

/** What writing a unit's batches needs, whichever way they are written. */
export interface UnitWriter {
  /** The target; null in a dry run, which converts and counts but writes nothing. */
  sql: Sql | null;
  sourceKey: string;
  /** Checkpoints at the start of the run: a unit with one is continued, never bulk-loaded. */
  checkpoints: Map<string, Checkpoint>;
  cache: PartitionCache;
  rejects: Rejects;
  time: (step: string, ms: number) => void;
  log: (line: string) => void;
  /** Why the unit must stop between batches (another unit failed, the run was cancelled), or null. */
  stopReason: () => string | null;
}

/**
 * Writes one unit's batches from its checkpoint `cp` on and returns its final checkpoint: a
 * period no run has started is loaded whole into a partition of its own (bulk.ts, loadPeriod);
 * anything else, or when that is not possible, is inserted batch by batch, each committed with
 * the unit's checkpoint.
 */
export async function writeUnit(
  w: UnitWriter,
  unit: Unit,
  cp: Checkpoint,
  batches: UnitBatches,
  tally: TableProgress,
): Promise<Checkpoint> {
  const { spec } = unit;
  if (
    w.sql &&
    spec.kind === 'event' &&
    typeof unit.period === 'number' &&
    !w.checkpoints.has(unit.key) &&
    unit.rows > 0
  ) {
    try {
      return await loadWholePeriod(w, w.sql, unit, spec, unit.period, cp, batches, tally);
    } catch (error) {
      if (!(error instanceof BulkUnavailable)) throw error;
      w.log(`${unit.key}: ${error.message}; inserting into the existing partition instead`);
    }
  }
  return insertBatches(w, unit, cp, batches, tally);
}

/**
 * Writes batches one after another, reading (and converting) the next while the last one is
 * written; stops between batches when `stopReason` says so, once the last write has settled.
 */
export async function pipeline(
  batches: UnitBatches,
  write: (b: Batch) => Promise<void>,
  stopReason: () => string | null,
  onRead: (b: Batch) => void = () => {},
): Promise<void> {
  let pending: Promise<unknown> | undefined;
  for (;;) {
    const stop = stopReason();
    const batch = stop ? undefined : await batches.next();
    if (batch) onRead(batch);
    if (pending) {
      const error = await pending;
      if (error) throw error;
    }
    if (stop) throw new Error(stop);
    if (!batch || (batch.rows === 0 && batch.rejects.length === 0)) break;
    pending = write(batch).then(
      () => undefined,
      (e: unknown) => e ?? new Error('batch failed'),
    );
  }
}

const timeBatch = (w: UnitWriter) => (b: Batch) => {
  w.time('read', b.readMs);
  w.time('convert', b.convertMs);
};

/** A period no run has started, in one transaction with its checkpoint (loadPeriod). */
async function loadWholePeriod(
  w: UnitWriter,
  sql: Sql,
  unit: Unit,
  spec: TableSpec & { kind: 'event' },
  period: number,
  cp: Checkpoint,
  batches: UnitBatches,
  tally: TableProgress,
): Promise<Checkpoint> {
  // The partition of the period's rows: recorded as holding imported rows with them, so
  // retention keeps it (migration 0131).
  const target = importTarget(spec.target, period);
  const copyStep = spec.legacy === 'MessageEvent' ? 'copy_messages' : 'copy';
  let acc = cp;
  await loadPeriod(
    sql,
    spec.target,
    target,
    (tx, table) =>
      pipeline(
        batches,
        async (b) => {
          w.rejects.keep(b);
          acc = advance(acc, b);
          tally.count(b);
          const c0 = performance.now();
          if (b.rows > 0) await writeBulkBatch(tx, spec, table, b);
          w.time(copyStep, performance.now() - c0);
          tally.progress();
        },
        w.stopReason,
        timeBatch(w),
      ),
    async (tx) => {
      await saveCheckpoint(tx, w.sourceKey, unit.key, acc, true);
      await markPartitionsImported(tx, spec.target, [target.lower], w.sourceKey);
    },
    w.time,
  );
  return acc;
}

/** Batch by batch, each committed with the unit's checkpoint (in a dry run, only counted). */
async function insertBatches(
  w: UnitWriter,
  unit: Unit,
  cp: Checkpoint,
  batches: UnitBatches,
  tally: TableProgress,
): Promise<Checkpoint> {
  let state = cp;
  await pipeline(
    batches,
    async (b) => {
      const next = advance(state, b);
      w.rejects.keep(b);
      if (w.sql) await commitBatch(w, w.sql, unit, next, b);
      state = next;
      tally.count(b);
      tally.progress();
    },
    w.stopReason,
    timeBatch(w),
  );
  const { sql } = w;
  if (sql) await sql.begin((tx) => saveCheckpoint(tx as TransactionSql, w.sourceKey, unit.key, state, true));
  return state;
}

/** One batch and the checkpoint after it, in one transaction; partitions created first. */
async function commitBatch(w: UnitWriter, sql: Sql, unit: Unit, next: Checkpoint, b: Batch): Promise<void> {
  const { spec } = unit;
  for (let attempt = 1; ; attempt++) {
    if (spec.kind === 'event' && b.rows > 0) {
      const t0 = performance.now();
      await ensurePartitions(
        sql,
        spec.type,
        [...b.days].map((d) => new Date(d * DAY)),
        w.cache,
      );
      w.time('partitions', performance.now() - t0);
    }
    try {
      const t0 = performance.now();
      await sql.begin(async (tx) => {
        // A lost commit after a server crash loses its checkpoint with it, so the
        // batch is simply imported again: durability per batch is not needed.
        await tx`set local synchronous_commit = off`;
        if (b.rows > 0) {
          if (spec.kind === 'event') await writeEventBatch(tx as TransactionSql, spec, b);
          else await writeReferenceBatch(tx as TransactionSql, spec, b);
        }
        await saveCheckpoint(tx as TransactionSql, w.sourceKey, unit.key, next, false);
        if (spec.kind === 'event' && b.rows > 0) {
          const days = b.days.map((d) => new Date(d * DAY));
          await markPartitionsImported(tx as TransactionSql, spec.target, days, w.sourceKey);
        }
      });
      w.time('write', performance.now() - t0);
      return;
    } catch (error) {
      // Retention may have dropped a partition we had seen: forget and recreate it.
      if (attempt < 3 && isMissingPartitionError(error)) {
        w.cache.clear();
        continue;
      }
      throw error;
    }
  }
}

/**
 * COPYs a batch into a temporary staging table and returns its name, for inserts into tables
 * that may already hold some of the rows (ON CONFLICT, a savepoint retry) and for reference
 * tables whose insert resolves legacy ids.
 */
async function stage(
  tx: TransactionSql,
  name: string,
  columns: readonly Column[],
  data: Buffer,
): Promise<string> {
  await stageRows(
    tx,
    name,
    { columns: columns.map((c) => ({ name: c.name, type: c.pgType })) },
    columns.map((c) => c.name),
    data,
  );
  return name;
}

const EVENT_COPY_HEAD: Column[] = [
  { name: 'id', kind: 'text', pgType: 'uuid' },
  { name: 'occurred_at', kind: 'ts', pgType: 'timestamptz' },
  { name: 'metadata', kind: 'text', pgType: 'jsonb' },
];

/**
 * COPYs a batch straight into a standalone table being bulk-loaded: fresh, no indexes, nothing
 * can conflict, and a row the server refuses fails the period's transaction as a failed cast
 * from staging would (postgres.js is patched so such a COPY rejects instead of hanging).
 */
async function writeBulkBatch(
  tx: TransactionSql,
  spec: TableSpec & { kind: 'event' },
  table: string,
  b: Batch,
): Promise<void> {
  const columns = [...EVENT_COPY_HEAD, ...spec.columns];
  await copyRows(
    tx,
    table,
    columns.map((c) => c.name),
    b.copy,
  );
}

async function writeEventBatch(
  tx: TransactionSql,
  spec: TableSpec & { kind: 'event' },
  b: Batch,
): Promise<void> {
  const columns = [...EVENT_COPY_HEAD, ...spec.columns];
  const staged = await stage(tx, `_import_stage_${spec.target}`, columns, b.copy);
  const cols = columns.map((c) => c.name).join(', ');
  const insert = `insert into ${spec.target} (${cols}) select ${cols} from ${staged} s`;
  try {
    // A plain insert is cheaper than ON CONFLICT's speculative insertion; rows can be there
    // already only when checkpoints were lost, and then the batch is redone skipping them.
    await tx.savepoint((sp) => sp.unsafe(insert));
  } catch (error) {
    if ((error as { code?: string }).code !== '23505') throw error;
    await tx.unsafe(`${insert} on conflict do nothing`);
  }
}

async function writeReferenceBatch(tx: TransactionSql, spec: TableSpec & { kind: 'reference' }, b: Batch) {
  const staged = await stage(tx, `_import_stage_${spec.target}`, spec.columns, b.copy);
  for (const statement of spec.insertSql(staged)) await tx.unsafe(statement);
}
