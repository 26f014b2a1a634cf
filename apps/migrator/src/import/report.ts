import { appendFileSync, writeFileSync } from 'node:fs';
import { type PartitionPolicy, partitionPolicies, type Sql } from '@spywatcher/db';
import type { Batch, RejectLine } from './batch.ts';
import type { StepTimes } from './bulk.ts';
import { aggregate, type Checkpoint } from './checkpoints.ts';
import type { Unit } from './plan.ts';
import { type Findings, TABLE_SPECS } from './tables.ts';
import type { VerifyResult } from './verify.ts';

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
   * exceed `seconds`): see StepTimes in bulk.ts and docs/benchmarks.md.
   */
  phases: StepTimes;
  rowsPerSecond: number;
  /** 0 ok, 3 too many rejects, 4 verification failed. */
  exitCode: number;
}

const DAY = 86_400_000;

/** Milliseconds per step, summed: `time` adds to `phases`. */
export function stepTimer(): { phases: StepTimes; time: (step: string, ms: number) => void } {
  const phases: StepTimes = {};
  return {
    phases,
    time: (step, ms) => {
      phases[step] = (phases[step] ?? 0) + ms;
    },
  };
}

/** Sets a table report's totals from its units' checkpoints. */
function setTotals(report: TableReport, total: Checkpoint): void {
  report.totalImported = Number(total.imported);
  report.totalRejected = Number(total.rejected);
  report.findings = total.findings;
  report.oldest = total.minMs === null ? null : new Date(total.minMs).toISOString();
}

/** One report per table, nothing read yet, its totals from the checkpoints of earlier runs. */
export function tableReports(checkpoints: Map<string, Checkpoint>): TableReport[] {
  return TABLE_SPECS.map((spec) => {
    const report: TableReport = {
      table: spec.legacy,
      target: spec.target,
      read: 0,
      imported: 0,
      rejected: 0,
      totalImported: 0,
      totalRejected: 0,
      findings: {},
      oldest: null,
    };
    setTotals(report, aggregate(checkpoints, spec));
    return report;
  });
}

/** The totals once this run's units are done. */
export function applyTotals(reports: TableReport[], states: Map<string, Checkpoint>): void {
  for (const spec of TABLE_SPECS)
    setTotals(reports.find((r) => r.table === spec.legacy)!, aggregate(states, spec));
}

/**
 * A table's figures and progress events in this run: `start` at its first unit, `progress`
 * after each written batch, `done` when its last unit is.
 */
export class TableProgress {
  readonly report: TableReport;
  private readonly total: number;
  private unitsLeft: number;
  private started = false;
  private readonly emit: (e: ProgressEvent) => void;

  constructor(report: TableReport, total: number, units: number, emit: (e: ProgressEvent) => void) {
    this.report = report;
    this.total = total;
    this.unitsLeft = units;
    this.emit = emit;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.emit({ table: this.report.table, phase: 'start', done: 0, total: this.total, rejected: 0 });
  }

  count(b: Batch): void {
    this.report.read += b.rows + b.rejects.length;
    this.report.imported += b.rows;
    this.report.rejected += b.rejects.length;
  }

  progress(): void {
    this.emit(this.event('progress'));
  }

  unitDone(): void {
    this.unitsLeft--;
    if (this.unitsLeft === 0) this.emit(this.event('done'));
  }

  private event(phase: 'progress' | 'done'): ProgressEvent {
    const { table, read, rejected } = this.report;
    return { table, phase, done: read, total: this.total, rejected };
  }
}

/** The progress of each table that has units in the plan, by legacy table name. */
export function tableProgress(
  units: readonly Unit[],
  reports: TableReport[],
  emit: (e: ProgressEvent) => void = () => {},
): Map<string, TableProgress> {
  const out = new Map<string, TableProgress>();
  for (const table of new Set(units.map((u) => u.spec.legacy))) {
    const mine = units.filter((u) => u.spec.legacy === table);
    const total = mine.reduce((n, u) => n + u.rows, 0);
    out.set(table, new TableProgress(reports.find((r) => r.table === table)!, total, mine.length, emit));
  }
  return out;
}

/** Rejected rows: appended to the reject file, or (a dry run, no file) the first 20 kept as samples. */
export class Rejects {
  readonly file: string | null;
  readonly samples: RejectLine[] = [];

  constructor(file: string | null) {
    this.file = file;
  }

  /** Empties the file (a first run on this source). */
  truncate(): void {
    if (this.file) writeFileSync(this.file, '');
  }

  keep(b: Batch): void {
    if (this.file) {
      if (b.rejects.length > 0)
        appendFileSync(this.file, `${b.rejects.map((r) => JSON.stringify(r)).join('\n')}\n`);
      return;
    }
    for (const r of b.rejects) if (this.samples.length < 20) this.samples.push(r);
  }
}

/** Says when the legacy OAuth tokens were left out for want of a key. */
export function tokenWarnings(reports: TableReport[]): string[] {
  const skipped = reports.reduce((n, r) => n + (r.findings.tokens_not_imported ?? 0), 0);
  if (skipped === 0) return [];
  return [
    `TOKEN_ENCRYPTION_KEYS is not set: the legacy OAuth tokens of ${skipped} user(s) were not imported (stored as null); they are never stored in clear. Set a key and import again to keep them.`,
  ];
}

/**
 * Retention keeps imported history unless an operator let it drop it (retention set and
 * drop_imported on): say so when that applies to the history just imported.
 */
export function retentionWarningsOf(
  policies: PartitionPolicy[],
  reports: TableReport[],
  now: number,
): string[] {
  const old: string[] = [];
  for (const r of reports) {
    const p = policies.find((x) => x.table === r.target);
    if (!p || p.retentionDays === null || !p.dropImported || !r.oldest) continue;
    if ((now - Date.parse(r.oldest)) / DAY > p.retentionDays) {
      old.push(`${r.target} (from ${r.oldest.slice(0, 10)}, retention ${p.retentionDays} days)`);
    }
  }
  if (old.length === 0) return [];
  return [
    `imported history is older than the retention of ${old.join(', ')}, and drop_imported is set: ` +
      'the next partition upkeep drops it. Keep it with `nx run migrator:retention -- TABLE DAYS --keep-imported`',
  ];
}

export async function retentionWarnings(sql: Sql, reports: TableReport[]): Promise<string[]> {
  return retentionWarningsOf(await partitionPolicies(sql), reports, Date.now());
}

export interface RunFigures {
  from: string;
  sourceKey: string;
  dryRun: boolean;
  reports: TableReport[];
  rejects: Rejects;
  maxRejects: number;
  verified: boolean | null;
  warnings: string[];
  /** Wall and CPU milliseconds of the run, and its steps' (StepTimes). */
  elapsedMs: number;
  cpuMs: number;
  phases: StepTimes;
}

/** The run's report: totals over the tables, the exit code, figures rounded to the millisecond. */
export function importReport(f: RunFigures): ImportReport {
  const { reports, dryRun } = f;
  const rows = reports.reduce((n, r) => n + r.read, 0);
  const imported = reports.reduce((n, r) => n + r.imported, 0);
  const rejected = reports.reduce((n, r) => n + (dryRun ? r.rejected : r.totalRejected), 0);
  const seconds = f.elapsedMs / 1000;
  let exitCode = 0;
  if (rejected > f.maxRejects) exitCode = 3;
  if (f.verified === false) exitCode = 4;
  return {
    from: f.from,
    sourceKey: f.sourceKey,
    dryRun,
    tables: reports,
    rows,
    imported,
    rejected,
    rejectFile: rejected > 0 ? f.rejects.file : null,
    rejectSamples: f.rejects.samples,
    verified: f.verified,
    warnings: f.warnings,
    seconds: Math.round(seconds * 1000) / 1000,
    cpuSeconds: Math.round(f.cpuMs) / 1000,
    phases: Object.fromEntries(Object.entries(f.phases).map(([k, v]) => [k, Math.round(v) / 1000])),
    rowsPerSecond: seconds > 0 ? Math.round(rows / seconds) : 0,
    exitCode,
  };
}
