import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inLanes, PartitionCache, type Sql } from '@spywatcher/db';
import { aggregate, type Checkpoint, emptyCheckpoint, loadCheckpoints } from './checkpoints.ts';
import { convertContext } from './convert-context.ts';
import { ConvertPool } from './convert-pool.ts';
import { planUnits, schedule, type Unit } from './plan.ts';
import {
  applyTotals,
  type ImportReport,
  importReport,
  type ProgressEvent,
  Rejects,
  retentionWarnings,
  stepTimer,
  type TableProgress,
  type TableReport,
  tableProgress,
  tableReports,
  tokenWarnings,
} from './report.ts';
import { ImportError, type LegacySource, openLegacySource } from './source.ts';
import { type ConvertContext, TABLE_SPECS } from './tables.ts';
import type { TokenCipher } from './token-cipher.ts';
import { type BatchSource, unitBatches } from './unit-batches.ts';
import { checkServerHash, verifyTable } from './verify.ts';
import { type UnitWriter, writeUnit } from './write.ts';

export type { RejectLine } from './batch.ts';
export type { ImportReport, ProgressEvent, TableReport } from './report.ts';

export interface ImportOptions {
  /** Path of the legacy SQLite file. */
  from: string;
  dryRun?: boolean;
  /** Compare counts and content hashes after the import (default true). */
  verify?: boolean;
  /** Only verify what an earlier run imported. */
  verifyOnly?: boolean;
  /** Rejected rows allowed before the run counts as failed (default 0). */
  maxRejects?: number;
  /** NDJSON file for rejected rows (default: `<from>.rejects.ndjson`). */
  rejectFile?: string;
  /** Rows per insert (and per commit, except in a bulk-loaded period, which commits once). */
  batchRows?: number;
  /** Event table periods imported at once (default 3). */
  concurrency?: number;
  /** Worker threads reading and converting event rows (default 2, one per core). */
  workers?: number;
  /**
   * Encrypts the legacy OAuth tokens (TOKEN_ENCRYPTION_KEYS); without it they are not imported
   * and the report says so.
   */
  tokens?: TokenCipher | null;
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  log?: (line: string) => void;
}

/**
 * Lanes loading periods at once: a lane's PostgreSQL work (index builds, attach) leaves the
 * import's thread idle, and a third lane fills those gaps on two cores (docs/benchmarks.md).
 */
export const DEFAULT_CONCURRENCY = 3;

/** Conversion workers: one per core of the 2-core machine (see convert-pool.ts). */
export const DEFAULT_WORKERS = 2;

export async function checkTarget(sql: Sql): Promise<void> {
  let row: { t: string | null } | undefined;
  try {
    [row] = await sql<{ t: string | null }[]>`select to_regclass('import_checkpoints')::text as t`;
  } catch (error) {
    const e = error as { code?: string; message?: string };
    if (e.code && /^(28|3D|42)/.test(e.code)) {
      throw new ImportError('TARGET_UNREACHABLE', `cannot use the target database: ${e.message}`);
    }
    throw new ImportError('TARGET_UNREACHABLE', `cannot reach the target PostgreSQL: ${e.message ?? e.code}`);
  }
  if (!row?.t) {
    throw new ImportError(
      'TARGET_NOT_MIGRATED',
      'the target database has no import tables: run `nx run migrator:migrate` first',
    );
  }
}

/** The run's advisory lock on this legacy database, held on a reserved connection. */
async function lockSource(sql: Sql, key: string): Promise<Awaited<ReturnType<Sql['reserve']>>> {
  const lock = await sql.reserve();
  try {
    const [got] = await lock<
      { ok: boolean }[]
    >`select pg_try_advisory_lock(hashtext(${`sw_import:${key}`})) as ok`;
    if (!got?.ok) {
      throw new ImportError('ALREADY_RUNNING', `another import of this legacy database (${key}) is running`);
    }
    return lock;
  } catch (error) {
    lock.release();
    throw error;
  }
}

/**
 * Imports a legacy SpyWatcher SQLite file into the event log (or, with dryRun, only reads,
 * validates and converts it). Each batch is committed together with its table's checkpoint,
 * so a killed run continues where the last commit left it and counts stay exact.
 */
export async function runImport(sql: Sql | null, options: ImportOptions): Promise<ImportReport> {
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const dryRun = options.dryRun === true;
  const source = openLegacySource(options.from);
  let lock: Awaited<ReturnType<Sql['reserve']>> | undefined;
  let scratch: string | undefined;
  let pool: ConvertPool | null = null;
  try {
    if (!dryRun) {
      if (!sql) throw new Error('a database connection is needed unless dryRun is set');
      await checkTarget(sql);
      lock = await lockSource(sql, source.key);
    }
    const target = dryRun ? null : sql;
    const checkpoints = target ? await loadCheckpoints(target, source.key) : new Map<string, Checkpoint>();
    const rejects = new Rejects(dryRun ? null : (options.rejectFile ?? `${options.from}.rejects.ndjson`));
    if (checkpoints.size === 0 && !options.verifyOnly) rejects.truncate();
    const ctx = convertContext(source, Date.now(), options.tokens ?? null);
    const { phases, time } = stepTimer();
    const reports = tableReports(checkpoints);

    // plan: imported history goes by month, whatever the table's period (bulk.ts, importTarget)
    if (target && !options.verifyOnly) scratch = mkdtempSync(join(tmpdir(), 'sw-import-'));
    const periods = scratch ? join(scratch, 'periods.sqlite') : null;
    const units = options.verifyOnly ? [] : planUnits(source, checkpoints, periods);
    // workers: 0 converts on the main thread (to measure what the workers bring)
    const workers = options.workers ?? DEFAULT_WORKERS;
    if (workers > 0 && units.some((u) => u.spec.kind === 'event')) {
      pool = new ConvertPool({ file: source.path, periods, now: ctx.now }, workers);
    }

    // batch and write
    const states = new Map(checkpoints);
    await importUnits(units, options.concurrency ?? DEFAULT_CONCURRENCY, {
      progress: tableProgress(units, reports, options.onProgress),
      states,
      batches: { db: source.db, pool, ctx, limit: options.batchRows ?? 5000, withCopy: !dryRun },
      writer: {
        sql: target,
        sourceKey: source.key,
        checkpoints,
        cache: new PartitionCache(),
        rejects,
        time,
        log: options.log ?? (() => {}),
        stopReason: () => (options.signal?.aborted === true ? 'import cancelled' : null),
      },
    });
    applyTotals(reports, states);

    // report
    const verifyStarted = performance.now();
    const verified =
      sql && ((options.verify !== false && !dryRun) || options.verifyOnly)
        ? await verifyImport(sql, source, ctx, reports, {
            concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
            time,
            log: options.log ?? (() => {}),
          })
        : null;
    time('verify', performance.now() - verifyStarted);
    const warnings = [...(target ? await retentionWarnings(target, reports) : []), ...tokenWarnings(reports)];
    const cpu = process.cpuUsage(cpuStarted);
    return importReport({
      from: options.from,
      sourceKey: source.key,
      dryRun,
      reports,
      rejects,
      maxRejects: options.maxRejects ?? 0,
      verified,
      warnings,
      elapsedMs: performance.now() - started,
      cpuMs: (cpu.user + cpu.system) / 1000,
      phases,
    });
  } finally {
    if (lock) {
      await lock`select pg_advisory_unlock(hashtext(${`sw_import:${source.key}`}))`.catch(() => {});
      lock.release();
    }
    await pool?.close();
    source.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
}

interface UnitsRun {
  /** Per legacy table. */
  progress: Map<string, TableProgress>;
  /** Each unit's checkpoint, set as units finish. */
  states: Map<string, Checkpoint>;
  batches: BatchSource;
  writer: UnitWriter;
}

/**
 * The reference units one at a time, then the event units in `lanes` parallel lanes (plan.ts,
 * schedule); the first failure stops the other lanes' units between batches.
 */
async function importUnits(units: Unit[], lanes: number, run: UnitsRun): Promise<void> {
  const { reference, events } = schedule(units);
  for (const unit of reference) await importUnit(unit, run);
  let failed = false;
  const cancelled = run.writer.stopReason;
  const lane: UnitsRun = {
    ...run,
    writer: { ...run.writer, stopReason: () => (failed ? 'stopped: another table failed' : cancelled()) },
  };
  await inLanes(events, lanes, async (unit) => {
    try {
      await importUnit(unit, lane);
    } catch (error) {
      failed = true;
      throw error;
    }
  });
}

/** One unit: its batches (batch step) written from its checkpoint on (write step). */
async function importUnit(unit: Unit, run: UnitsRun): Promise<void> {
  const cp = run.writer.checkpoints.get(unit.key) ?? emptyCheckpoint();
  const tally = run.progress.get(unit.spec.legacy)!;
  tally.start();
  const batches = unitBatches(run.batches, unit, cp);
  try {
    run.states.set(unit.key, await writeUnit(run.writer, unit, cp, batches, tally));
    tally.unitDone();
  } finally {
    batches.close();
  }
}

/**
 * Compares each table's rows and content hash in PostgreSQL with what the checkpoints say was
 * imported; true when every table matches.
 */
async function verifyImport(
  sql: Sql,
  source: LegacySource,
  ctx: ConvertContext,
  reports: TableReport[],
  o: { concurrency: number; time: (step: string, ms: number) => void; log: (line: string) => void },
): Promise<boolean> {
  const fresh = await loadCheckpoints(sql, source.key);
  await checkServerHash(sql);
  // Each table is one scan on the server: one per lane keeps the cores busy.
  await inLanes(TABLE_SPECS, o.concurrency, async (spec) => {
    const cp = aggregate(fresh, spec);
    const result = await verifyTable(sql, source, spec, ctx, { rows: cp.imported, hash: cp.hash }, o.time);
    reports.find((r) => r.table === spec.legacy)!.verification = result;
    if (!result.ok) o.log(`verification failed for ${spec.legacy}: ${result.message}`);
  });
  return reports.every((r) => r.verification?.ok === true);
}
