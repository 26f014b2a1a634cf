import { jsonb, type Sql } from '@spywatcher/db';
import { JobHeartbeat, JobTable } from '@spywatcher/jobs';
import type { ImportReport, ProgressEvent } from './importer.ts';

/** Import jobs as rows of import_runs, so any instance can answer GET /v1/imports/{id}. */
export interface ImportRun {
  id: string;
  sourcePath: string;
  sourceKey: string | null;
  dryRun: boolean;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  options: Record<string, unknown>;
  progress: Record<string, TableProgress>;
  report: ImportReport | null;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
}

export interface TableProgress {
  done: number;
  total: number;
  rejected: number;
  rowsPerSecond: number;
}

/** import_runs as a job table: this instance's runs, their heartbeat and the abandon rule. */
export function importRuns(sql: Sql): JobTable {
  return new JobTable({ sql, table: 'import_runs', label: 'import' });
}

/**
 * Renews the heartbeat of the runs this instance executes and fails other instances' runs whose
 * heartbeat stopped (a killed import), every `everyMs`.
 */
export function importHeartbeat(
  runs: JobTable,
  running: () => string[],
  settings: { everyMs?: number; abandonAfterMs?: number } = {},
): JobHeartbeat {
  return new JobHeartbeat({ jobs: runs, running, ...settings });
}

export async function createRun(
  runs: JobTable,
  run: { id: string; sourcePath: string; dryRun: boolean; options: Record<string, unknown> },
): Promise<void> {
  await runs.create({
    id: run.id,
    source_path: run.sourcePath,
    dry_run: run.dryRun,
    options: jsonb(runs.sql, run.options),
  });
}

export async function markRunning(runs: JobTable, id: string): Promise<void> {
  await runs.claim(id);
}

export async function finishRun(
  runs: JobTable,
  id: string,
  outcome: { report: ImportReport } | { error: string },
): Promise<void> {
  if ('report' in outcome) {
    const ok = outcome.report.exitCode === 0;
    await runs.finish(id, {
      status: ok ? 'succeeded' : 'failed',
      error: ok ? null : outcome.report.exitCode === 4 ? 'verification failed' : 'too many rejected rows',
      set: { source_key: outcome.report.sourceKey, report: jsonb(runs.sql, outcome.report) },
    });
  } else {
    await runs.finish(id, { status: 'failed', error: outcome.error });
  }
}

/**
 * Collects progress events and writes them to the run at most once per `intervalMs`, so a
 * fast import does not spend its time updating its own progress row.
 */
export function progressRecorder(runs: JobTable, id: string, intervalMs = 1000) {
  const progress: Record<string, TableProgress> = {};
  const startedAt = new Map<string, number>();
  let lastWrite = 0;
  let writing: Promise<unknown> = Promise.resolve();
  const write = () => {
    lastWrite = Date.now();
    const snapshot = structuredClone(progress);
    writing = writing.then(() => runs.progress(id, { progress: jsonb(runs.sql, snapshot) })).catch(() => {});
  };
  return {
    onProgress(e: ProgressEvent) {
      if (e.phase === 'start') startedAt.set(e.table, Date.now());
      const seconds = (Date.now() - (startedAt.get(e.table) ?? Date.now())) / 1000;
      progress[e.table] = {
        done: e.done,
        total: e.total,
        rejected: e.rejected,
        rowsPerSecond: seconds > 0 ? Math.round(e.done / seconds) : 0,
      };
      if (e.phase !== 'progress' || Date.now() - lastWrite >= intervalMs) write();
    },
    async flush() {
      write();
      await writing;
    },
  };
}

export async function getRun(sql: Sql, id: string): Promise<ImportRun | undefined> {
  const [r] = await sql<
    {
      id: string;
      source_path: string;
      source_key: string | null;
      dry_run: boolean;
      status: ImportRun['status'];
      options: Record<string, unknown>;
      progress: Record<string, TableProgress>;
      report: ImportReport | null;
      error: string | null;
      created_at: Date;
      started_at: Date | null;
      finished_at: Date | null;
      updated_at: Date;
    }[]
  >`select * from import_runs where id = ${id}`;
  if (!r) return undefined;
  return {
    id: r.id,
    sourcePath: r.source_path,
    sourceKey: r.source_key,
    dryRun: r.dry_run,
    status: r.status,
    options: r.options,
    progress: r.progress,
    report: r.report,
    error: r.error,
    createdAt: r.created_at.toISOString(),
    startedAt: r.started_at?.toISOString() ?? null,
    finishedAt: r.finished_at?.toISOString() ?? null,
    updatedAt: r.updated_at.toISOString(),
  };
}
