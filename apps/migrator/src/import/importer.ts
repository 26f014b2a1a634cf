import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ensurePartitions,
  inLanes,
  isMissingPartitionError,
  markPartitionsImported,
  PartitionCache,
  partitionPolicies,
  type Sql,
  type TransactionSql,
} from '@spywatcher/db';
import { type Batch, buildBatch, type RejectLine } from './batch.ts';

export type { RejectLine };

import {
  attachPeriodIndex,
  BulkUnavailable,
  importTarget,
  loadPeriod,
  PeriodIndex,
  type StepTimes,
} from './bulk.ts';
import { ConvertPool, type UnitBatches } from './convert-pool.ts';
import { countRows, selectRows, type UnitRange } from './reads.ts';
import { ImportError, type LegacySource, openLegacySource } from './source.ts';
import {
  type Column,
  type ConvertContext,
  type Findings,
  type Row,
  TABLE_SPECS,
  type TableSpec,
} from './tables.ts';
import type { TokenCipher } from './token-cipher.ts';
import { isProblem } from './values.ts';
import { checkServerHash, type VerifyResult, verifyTable } from './verify.ts';

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

export interface ProgressEvent {
  table: string;
  phase: 'start' | 'progress' | 'done';
  /** Rows read in this run (imported or rejected). */
  done: number;
  /** Rows to read in this run. */
  total: number;
  rejected: number;
}

export interface TableReport {
  table: string;
  target: string;
  /** Rows read in this run. */
  read: number;
  /** Rows imported (or, in a dry run, that would be) in this run. */
  imported: number;
  rejected: number;
  /** Since the first run on this source (from the checkpoint); equal to the above in a dry run. */
  totalImported: number;
  totalRejected: number;
  findings: Findings;
  oldest: string | null;
  verification?: VerifyResult;
}

export interface ImportReport {
  from: string;
  sourceKey: string;
  dryRun: boolean;
  tables: TableReport[];
  rows: number;
  imported: number;
  rejected: number;
  rejectFile: string | null;
  /** Reject samples (dry run only: it writes no file). */
  rejectSamples: RejectLine[];
  verified: boolean | null;
  warnings: string[];
  seconds: number;
  /** CPU time of this process (reading, converting, hashing, encoding): PostgreSQL's is not in it. */
  cpuSeconds: number;
  /**
   * Seconds spent per step, summed over the lanes and workers running at once (so they can
   * exceed `seconds`): see StepTimes in bulk.ts and the README's benchmark section.
   */
  phases: StepTimes;
  rowsPerSecond: number;
  /** 0 ok, 3 too many rejects, 4 verification failed. */
  exitCode: number;
}

interface Checkpoint {
  lastKey: string | null;
  imported: bigint;
  rejected: bigint;
  hash: bigint;
  findings: Findings;
  minMs: number | null;
}

const DAY = 86_400_000;

/**
 * Lanes loading periods at once. Three beat two on the 2-core machine (1M rows: 16.8 s against
 * 19.2 s on average over four alternated pairs): a lane's PostgreSQL work (index builds, attach)
 * leaves the import's thread idle, and a third lane fills those gaps.
 */
export const DEFAULT_CONCURRENCY = 3;

/** Conversion workers: one per core of the 2-core machine (see convert-pool.ts). */
export const DEFAULT_WORKERS = 2;

/** The batches of a reference table, converted on the main thread (a few thousand rows). */
function localBatches(
  db: LegacySource['db'],
  spec: TableSpec,
  range: UnitRange,
  limit: number,
  ctx: ConvertContext,
  withCopy: boolean,
): UnitBatches {
  const rows = selectRows(db, spec, range);
  return { next: async () => buildBatch(spec, rows, limit, ctx, withCopy), close: () => rows.return?.() };
}

/** Relative PostgreSQL cost of a row, to start the costliest table first. */
const costOf = (spec: TableSpec) => (spec.legacy === 'MessageEvent' ? 8 : 1);

async function copyText(
  tx: TransactionSql,
  table: string,
  columns: readonly string[],
  data: Buffer,
): Promise<void> {
  const writable = await tx.unsafe(`copy ${table} (${columns.join(', ')}) from stdin`).writable();
  await new Promise<void>((resolve, reject) => {
    writable.on('error', reject);
    writable.on('finish', resolve);
    writable.end(data);
  });
}

/**
 * COPYs a batch into a temporary all-text staging table and returns a select of it with casts,
 * for inserts into tables that may already hold some of the rows (ON CONFLICT, a savepoint
 * retry) and for reference tables whose insert resolves legacy ids.
 */
async function stage(
  tx: TransactionSql,
  name: string,
  columns: readonly Column[],
  data: Buffer,
): Promise<string> {
  await tx.unsafe(
    `create temp table if not exists ${name} (${columns.map((c) => `${c.name} text`).join(', ')}) on commit drop`,
  );
  await tx.unsafe(`truncate ${name}`);
  await copyText(
    tx,
    name,
    columns.map((c) => c.name),
    data,
  );
  return `(select ${columns.map((c) => `${c.name}::${c.pgType} as ${c.name}`).join(', ')} from ${name})`;
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
  await copyText(
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

async function loadCheckpoints(sql: Sql, key: string): Promise<Map<string, Checkpoint>> {
  const rows = await sql<
    {
      source_table: string;
      last_key: string | null;
      rows_imported: string;
      rows_rejected: string;
      rows_hash: string;
      findings: Findings;
      min_ms: string | null;
    }[]
  >`
    select source_table, last_key, rows_imported, rows_rejected, rows_hash::text, findings,
           (extract(epoch from min_occurred_at) * 1000)::bigint::text as min_ms
    from import_checkpoints where source_key = ${key}
  `;
  return new Map(
    rows.map((r) => [
      r.source_table,
      {
        lastKey: r.last_key,
        imported: BigInt(r.rows_imported),
        rejected: BigInt(r.rows_rejected),
        hash: BigInt(r.rows_hash),
        findings: r.findings,
        minMs: r.min_ms === null ? null : Number(r.min_ms),
      },
    ]),
  );
}

function advance(state: Checkpoint, b: Batch): Checkpoint {
  return {
    lastKey: b.lastKey ?? state.lastKey,
    imported: state.imported + BigInt(b.rows),
    rejected: state.rejected + BigInt(b.rejects.length),
    hash: state.hash + b.hash,
    findings: mergeFindings(state.findings, b.findings),
    minMs: b.minMs === null ? state.minMs : state.minMs === null ? b.minMs : Math.min(state.minMs, b.minMs),
  };
}

const emptyCheckpoint = (): Checkpoint => ({
  lastKey: null,
  imported: 0n,
  rejected: 0n,
  hash: 0n,
  findings: {},
  minMs: null,
});

function mergeFindings(into: Findings, add: Findings): Findings {
  const out = { ...into };
  for (const [k, v] of Object.entries(add))
    out[k as keyof Findings] = (out[k as keyof Findings] ?? 0) + (v ?? 0);
  return out;
}

async function saveCheckpoint(
  tx: TransactionSql,
  key: string,
  table: string,
  cp: Checkpoint,
  completed: boolean,
) {
  await tx`
    insert into import_checkpoints
      (source_key, source_table, last_key, rows_imported, rows_rejected, rows_hash, findings, min_occurred_at, completed, updated_at)
    values (${key}, ${table}, ${cp.lastKey}, ${cp.imported.toString()}, ${cp.rejected.toString()},
            ${cp.hash.toString()}::numeric, ${tx.json(cp.findings as never)},
            ${cp.minMs === null ? null : new Date(cp.minMs)}, ${completed}, now())
    on conflict (source_key, source_table) do update set
      last_key = excluded.last_key, rows_imported = excluded.rows_imported, rows_rejected = excluded.rows_rejected,
      rows_hash = excluded.rows_hash, findings = excluded.findings, min_occurred_at = excluded.min_occurred_at,
      completed = excluded.completed, updated_at = now()
  `;
}

/** Event tables are imported in id ranges of this size, each with its own checkpoint. */
const RANGE = 100_000;

interface Unit {
  spec: TableSpec;
  /** Checkpoint key: the legacy table, or `<table>#<range>` for an event table's id range. */
  key: string;
  /** Exclusive bounds of the range (null: unbounded). */
  after: string | null;
  before: number | null;
  /** Event tables (not in a dry run): the partition period's start (epoch ms), or null for rows
   * without a valid date (they are rejected). */
  period?: number | null;
  rows: number;
}

interface TableProgressState {
  total: number;
  unitsLeft: number;
  started: boolean;
}

const periodKey = (start: number) => new Date(start).toISOString().slice(0, 10).replaceAll('-', '');

/**
 * What is left to read: one unit per reference table; per event table, one per partition period
 * (or, in a dry run, per id range) and one for rows without a valid date.
 */
function planUnits(
  source: LegacySource,
  checkpoints: Map<string, Checkpoint>,
  periods: PeriodIndex | null,
): Unit[] {
  const units: Unit[] = [];
  for (const spec of TABLE_SPECS) {
    if (spec.kind === 'reference') {
      const after = checkpoints.get(spec.legacy)?.lastKey ?? null;
      units.push({
        spec,
        key: spec.legacy,
        after,
        before: null,
        rows: countRows(source.db, spec, { after, before: null }),
      });
      continue;
    }
    if (periods) {
      const starts = [...periods.index(spec, 'month').keys()].sort((a, b) => a - b);
      for (const start of [...starts, null]) {
        const key = start === null ? `${spec.legacy}#undated` : `${spec.legacy}@${periodKey(start)}`;
        const after = checkpoints.get(key)?.lastKey ?? null;
        const rows = countRows(source.db, spec, { after, before: null, period: start });
        if (rows > 0 || checkpoints.has(key))
          units.push({ spec, key, after, before: null, period: start, rows });
      }
      continue;
    }
    const span = source.db.prepare(`select min(id) as lo, max(id) as hi from "${spec.legacy}"`).get() as {
      lo: number | null;
      hi: number | null;
    };
    if (span.lo === null || span.hi === null) continue;
    for (let k = Math.floor(span.lo / RANGE); k <= Math.floor(span.hi / RANGE); k++) {
      const key = `${spec.legacy}#${k}`;
      const after = checkpoints.get(key)?.lastKey ?? String(k * RANGE - 1);
      const before = (k + 1) * RANGE;
      units.push({ spec, key, after, before, rows: countRows(source.db, spec, { after, before }) });
    }
  }
  return units;
}

/** A table's figures summed over its units' checkpoints. */
function aggregate(states: Map<string, Checkpoint>, spec: TableSpec): Checkpoint {
  let out = emptyCheckpoint();
  for (const [key, cp] of states) {
    if (key !== spec.legacy && !key.startsWith(`${spec.legacy}#`) && !key.startsWith(`${spec.legacy}@`))
      continue;
    out = {
      lastKey: null,
      imported: out.imported + cp.imported,
      rejected: out.rejected + cp.rejected,
      hash: out.hash + cp.hash,
      findings: mergeFindings(out.findings, cp.findings),
      minMs: cp.minMs === null ? out.minMs : out.minMs === null ? cp.minMs : Math.min(out.minMs, cp.minMs),
    };
  }
  return out;
}

/** Legacy users that cannot be imported: the guilds pointing at them are orphans. */
function convertContext(source: LegacySource, now: number, tokens: TokenCipher | null): ConvertContext {
  const users = TABLE_SPECS.find((s) => s.legacy === 'User')!;
  const rejectedUsers = new Set<string>();
  const ctx: ConvertContext = {
    now,
    tokens,
    rejectedUsers,
    userExists: (() => {
      const stmt = source.db.prepare(`select 1 as ok from "User" where id = ?`);
      return (id: string) => stmt.get(id) !== undefined;
    })(),
  };
  if (users.kind === 'reference') {
    const stmt = source.db.prepare(`select * from "User"`);
    stmt.setReadBigInts(true);
    for (const row of stmt.iterate() as Iterable<Row>) {
      if (isProblem(users.convert(row, {}, ctx))) rejectedUsers.add(String(row.id));
    }
  }
  return ctx;
}

/** Says when the legacy OAuth tokens were left out for want of a key. */
function tokenWarnings(reports: TableReport[]): string[] {
  const skipped = reports.reduce((n, r) => n + (r.findings.tokens_not_imported ?? 0), 0);
  if (skipped === 0) return [];
  return [
    `TOKEN_ENCRYPTION_KEYS is not set: the legacy OAuth tokens of ${skipped} user(s) were not imported (stored as null); they are never stored in clear. Set a key and import again to keep them.`,
  ];
}

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

/**
 * Imports a legacy SpyWatcher SQLite file into the event log (or, with dryRun, only reads,
 * validates and converts it). Each batch is committed together with its table's checkpoint,
 * so a killed run continues where the last commit left it and counts stay exact.
 */
export async function runImport(sql: Sql | null, options: ImportOptions): Promise<ImportReport> {
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const dryRun = options.dryRun === true;
  const verify = options.verify !== false && !dryRun;
  const batchRows = options.batchRows ?? 5000;
  const log = options.log ?? (() => {});
  const source = openLegacySource(options.from);
  let lock: Awaited<ReturnType<Sql['reserve']>> | undefined;
  let scratch: string | undefined;
  let periodIndex: PeriodIndex | null = null;
  let pool: ConvertPool | null = null;
  try {
    if (!dryRun) {
      if (!sql) throw new Error('a database connection is needed unless dryRun is set');
      await checkTarget(sql);
      lock = await sql.reserve();
      const [got] = await lock<
        { ok: boolean }[]
      >`select pg_try_advisory_lock(hashtext(${`sw_import:${source.key}`})) as ok`;
      if (!got?.ok) {
        throw new ImportError(
          'ALREADY_RUNNING',
          `another import of this legacy database (${source.key}) is running`,
        );
      }
    }
    const checkpoints =
      dryRun || !sql ? new Map<string, Checkpoint>() : await loadCheckpoints(sql, source.key);
    const rejectFile = dryRun ? null : (options.rejectFile ?? `${options.from}.rejects.ndjson`);
    if (rejectFile && checkpoints.size === 0 && !options.verifyOnly) writeFileSync(rejectFile, '');
    const ctx = convertContext(source, Date.now(), options.tokens ?? null);
    const cache = new PartitionCache();
    const reports: TableReport[] = [];
    const phases: StepTimes = {};
    const time = (step: string, ms: number) => {
      phases[step] = (phases[step] ?? 0) + ms;
    };
    const timeBatch = (b: Batch) => {
      time('read', b.readMs);
      time('convert', b.convertMs);
    };
    const rejectSamples: RejectLine[] = [];
    const warnings: string[] = [];

    const states = new Map(checkpoints);
    const importUnit = async (unit: Unit, report: TableReport, progress: TableProgressState) => {
      const { spec } = unit;
      const cp = checkpoints.get(unit.key) ?? emptyCheckpoint();
      if (!progress.started) {
        progress.started = true;
        options.onProgress?.({
          table: spec.legacy,
          phase: 'start',
          done: 0,
          total: progress.total,
          rejected: 0,
        });
      }
      // A table is done when its last unit (id range or period) is.
      const unitDone = (final: Checkpoint) => {
        states.set(unit.key, final);
        progress.unitsLeft--;
        if (progress.unitsLeft === 0) {
          options.onProgress?.({
            table: spec.legacy,
            phase: 'done',
            done: report.read,
            total: progress.total,
            rejected: report.rejected,
          });
        }
      };
      // Per batch, whichever path loads it: rejects to their file, the table's counts, progress.
      const keepRejects = (b: Batch) => {
        if (b.rejects.length > 0 && rejectFile) {
          appendFileSync(rejectFile, `${b.rejects.map((r) => JSON.stringify(r)).join('\n')}\n`);
        }
      };
      const count = (b: Batch) => {
        report.read += b.rows + b.rejects.length;
        report.imported += b.rows;
        report.rejected += b.rejects.length;
      };
      const reportProgress = () =>
        options.onProgress?.({
          table: spec.legacy,
          phase: 'progress',
          done: report.read,
          total: progress.total,
          rejected: report.rejected,
        });
      const range = { after: cp.lastKey ?? unit.after, before: unit.before, period: unit.period };
      const batches =
        spec.kind === 'event' && pool
          ? pool.open(spec.legacy, range, batchRows, !dryRun)
          : localBatches(source.db, spec, range, batchRows, ctx, !dryRun);
      try {
        await importBatches(unit, cp, batches, keepRejects, count, reportProgress, unitDone);
      } finally {
        batches.close();
      }
    };
    const importBatches = async (
      unit: Unit,
      cp: Checkpoint,
      batches: UnitBatches,
      keepRejects: (b: Batch) => void,
      count: (b: Batch) => void,
      reportProgress: () => void,
      unitDone: (final: Checkpoint) => void,
    ) => {
      const { spec } = unit;
      let state = cp;
      // The partition of the period's rows: recorded as holding imported rows with them, so
      // retention keeps it (migration 0131).
      const target =
        !dryRun && sql && spec.kind === 'event' && typeof unit.period === 'number'
          ? importTarget(spec.target, unit.period)
          : null;
      if (sql && spec.kind === 'event' && target && !checkpoints.has(unit.key) && unit.rows > 0) {
        let acc = cp;
        try {
          await loadPeriod(
            sql,
            spec.target,
            target,
            async (tx, table) => {
              let pending: Promise<unknown> | undefined;
              for (;;) {
                if (failed || options.signal?.aborted === true) {
                  throw new Error(failed ? 'stopped: another table failed' : 'import cancelled');
                }
                const b = await batches.next();
                timeBatch(b);
                if (pending) {
                  const error = await pending;
                  if (error) throw error;
                }
                if (b.rows === 0 && b.rejects.length === 0) break;
                keepRejects(b);
                acc = advance(acc, b);
                count(b);
                const c0 = performance.now();
                pending = (b.rows > 0 ? writeBulkBatch(tx, spec, table, b) : Promise.resolve()).then(
                  () => {
                    time(spec.legacy === 'MessageEvent' ? 'copy_messages' : 'copy', performance.now() - c0);
                    reportProgress();
                  },
                  (e: unknown) => e ?? new Error('batch failed'),
                );
              }
            },
            async (tx) => {
              await saveCheckpoint(tx, source.key, unit.key, acc, true);
              await markPartitionsImported(tx, spec.target, [target.lower], source.key);
            },
            time,
          );
          unitDone(acc);
          return;
        } catch (error) {
          if (!(error instanceof BulkUnavailable)) throw error;
          log(`${unit.key}: ${error.message}; inserting into the existing partition instead`);
        }
      }
      let pending: Promise<unknown> | undefined;
      const write = async (b: Batch) => {
        const nextState = advance(state, b);
        if (!dryRun) {
          keepRejects(b);
          for (let attempt = 1; ; attempt++) {
            if (spec.kind === 'event' && b.rows > 0) {
              const t0 = performance.now();
              await ensurePartitions(
                sql!,
                spec.type,
                [...b.days].map((d) => new Date(d * DAY)),
                cache,
              );
              time('partitions', performance.now() - t0);
            }
            try {
              const t0 = performance.now();
              await sql!.begin(async (tx) => {
                // A lost commit after a server crash loses its checkpoint with it, so the
                // batch is simply imported again: durability per batch is not needed.
                await tx`set local synchronous_commit = off`;
                if (b.rows > 0) {
                  if (spec.kind === 'event') await writeEventBatch(tx as TransactionSql, spec, b);
                  else await writeReferenceBatch(tx as TransactionSql, spec, b);
                }
                await saveCheckpoint(tx as TransactionSql, source.key, unit.key, nextState, false);
                if (spec.kind === 'event' && b.rows > 0) {
                  const days = b.days.map((d) => new Date(d * DAY));
                  await markPartitionsImported(tx as TransactionSql, spec.target, days, source.key);
                }
              });
              time('write', performance.now() - t0);
              break;
            } catch (error) {
              // Retention may have dropped a partition we had seen: forget and recreate it.
              if (attempt < 3 && isMissingPartitionError(error)) {
                cache.clear();
                continue;
              }
              throw error;
            }
          }
        } else {
          for (const r of b.rejects) if (rejectSamples.length < 20) rejectSamples.push(r);
        }
        state = nextState;
        states.set(unit.key, state);
        count(b);
        reportProgress();
      };
      for (;;) {
        const stop = failed || options.signal?.aborted === true;
        const batch = stop ? undefined : await batches.next();
        if (batch) timeBatch(batch);
        if (pending) {
          const error = await pending;
          if (error) throw error;
        }
        if (stop) throw new Error(failed ? 'stopped: another table failed' : 'import cancelled');
        if (!batch || (batch.rows === 0 && batch.rejects.length === 0)) break;
        pending = write(batch).then(
          () => undefined,
          (e: unknown) => e ?? new Error('batch failed'),
        );
      }
      if (!dryRun && sql) {
        await sql.begin((tx) => saveCheckpoint(tx as TransactionSql, source.key, unit.key, state, true));
      }
      unitDone(state);
    };
    for (const spec of TABLE_SPECS) {
      const cp = aggregate(checkpoints, spec);
      reports.push({
        table: spec.legacy,
        target: spec.target,
        read: 0,
        imported: 0,
        rejected: 0,
        totalImported: Number(cp.imported),
        totalRejected: Number(cp.rejected),
        findings: cp.findings,
        oldest: cp.minMs === null ? null : new Date(cp.minMs).toISOString(),
      });
    }
    const reportOf = (spec: TableSpec) => reports.find((r) => r.table === spec.legacy)!;
    // imported history goes by month, whatever the table's period (bulk.ts, importTarget)
    const byPeriod = !dryRun && sql !== null && !options.verifyOnly;
    if (byPeriod) {
      scratch = mkdtempSync(join(tmpdir(), 'sw-import-'));
      periodIndex = new PeriodIndex(source.path, join(scratch, 'periods.sqlite'));
      attachPeriodIndex(source.db, periodIndex.path);
    }
    const plan = options.verifyOnly ? [] : planUnits(source, checkpoints, periodIndex);
    periodIndex?.close();
    // workers: 0 converts on the main thread (to measure what the workers bring)
    if ((options.workers ?? DEFAULT_WORKERS) > 0 && plan.some((u) => u.spec.kind === 'event')) {
      pool = new ConvertPool(
        { file: source.path, periods: periodIndex?.path ?? null, now: ctx.now },
        options.workers ?? DEFAULT_WORKERS,
      );
    }
    const progressOf = new Map<TableSpec, TableProgressState>();
    for (const u of plan) {
      const p = progressOf.get(u.spec) ?? { total: 0, unitsLeft: 0, started: false };
      p.total += u.rows;
      p.unitsLeft++;
      progressOf.set(u.spec, p);
    }
    // Users before the guilds that point at them, one at a time; then the event tables'
    // id ranges in parallel lanes, costliest first (message rows compute a tsvector and feed a
    // GIN index), so PostgreSQL works on several periods at once and no table is left alone at the end.
    let failed = false;
    for (const unit of plan.filter((u) => u.spec.kind === 'reference')) {
      await importUnit(unit, reportOf(unit.spec), progressOf.get(unit.spec)!);
    }
    const queue = plan
      .filter((u) => u.spec.kind === 'event')
      .sort((a, b) => b.rows * costOf(b.spec) - a.rows * costOf(a.spec));
    // `failed` also stops the other lanes' units between batches (see importUnit).
    await inLanes(queue, options.concurrency ?? DEFAULT_CONCURRENCY, async (unit) => {
      try {
        await importUnit(unit, reportOf(unit.spec), progressOf.get(unit.spec)!);
      } catch (error) {
        failed = true;
        throw error;
      }
    });
    for (const spec of TABLE_SPECS) {
      const total = aggregate(states, spec);
      const report = reportOf(spec);
      report.totalImported = Number(total.imported);
      report.totalRejected = Number(total.rejected);
      report.findings = total.findings;
      report.oldest = total.minMs === null ? null : new Date(total.minMs).toISOString();
    }

    let verified: boolean | null = null;
    const verifyStarted = performance.now();
    if ((verify || options.verifyOnly) && sql) {
      const fresh = await loadCheckpoints(sql, source.key);
      await checkServerHash(sql);
      // Each table is one scan on the server: one per lane keeps the cores busy.
      await inLanes(TABLE_SPECS, options.concurrency ?? DEFAULT_CONCURRENCY, async (spec) => {
        const cp = aggregate(fresh, spec);
        const result = await verifyTable(sql, source, spec, ctx, { rows: cp.imported, hash: cp.hash }, time);
        reportOf(spec).verification = result;
        if (!result.ok) log(`verification failed for ${spec.legacy}: ${result.message}`);
      });
      verified = reports.every((r) => r.verification?.ok === true);
    }
    time('verify', performance.now() - verifyStarted);
    if (sql && !dryRun) warnings.push(...(await retentionWarnings(sql, reports)));
    warnings.push(...tokenWarnings(reports));

    const rows = reports.reduce((n, r) => n + r.read, 0);
    const imported = reports.reduce((n, r) => n + r.imported, 0);
    const rejectedTotal = reports.reduce((n, r) => n + (dryRun ? r.rejected : r.totalRejected), 0);
    const seconds = (performance.now() - started) / 1000;
    const maxRejects = options.maxRejects ?? 0;
    let exitCode = 0;
    if (rejectedTotal > maxRejects) exitCode = 3;
    if (verified === false) exitCode = 4;
    return {
      from: options.from,
      sourceKey: source.key,
      dryRun,
      tables: reports,
      rows,
      imported,
      rejected: rejectedTotal,
      rejectFile: rejectedTotal > 0 ? rejectFile : null,
      rejectSamples,
      verified,
      warnings,
      seconds: Math.round(seconds * 1000) / 1000,
      cpuSeconds: (() => {
        const cpu = process.cpuUsage(cpuStarted);
        return Math.round((cpu.user + cpu.system) / 1000) / 1000;
      })(),
      phases: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Math.round(v) / 1000])),
      rowsPerSecond: seconds > 0 ? Math.round(rows / seconds) : 0,
      exitCode,
    };
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

/**
 * Retention keeps imported history unless an operator let it drop it (retention set and
 * drop_imported on): say so when that applies to the history just imported.
 */
async function retentionWarnings(sql: Sql, reports: TableReport[]): Promise<string[]> {
  const policies = await partitionPolicies(sql);
  const old: string[] = [];
  for (const r of reports) {
    const p = policies.find((x) => x.table === r.target);
    if (!p || p.retentionDays === null || !p.dropImported || !r.oldest) continue;
    if ((Date.now() - Date.parse(r.oldest)) / DAY > p.retentionDays) {
      old.push(`${r.target} (from ${r.oldest.slice(0, 10)}, retention ${p.retentionDays} days)`);
    }
  }
  if (old.length === 0) return [];
  return [
    `imported history is older than the retention of ${old.join(', ')}, and drop_imported is set: ` +
      'the next partition upkeep drops it. Keep it with `nx run migrator:retention -- TABLE DAYS --keep-imported`',
  ];
}
