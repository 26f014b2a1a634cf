import { jsonb, type Sql } from '@spywatcher/db';
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

export async function createRun(
  sql: Sql,
  run: { id: string; sourcePath: string; dryRun: boolean; options: Record<string, unknown> },
): Promise<void> {
  await sql`
    insert into import_runs (id, source_path, dry_run, options)
    values (${run.id}, ${run.sourcePath}, ${run.dryRun}, ${jsonb(sql, run.options)})
  `;
}

export async function markRunning(sql: Sql, id: string): Promise<void> {
  await sql`update import_runs set status = 'running', started_at = now(), updated_at = now() where id = ${id}`;
}

export async function finishRun(
  sql: Sql,
  id: string,
  outcome: { report: ImportReport } | { error: string },
): Promise<void> {
  if ('report' in outcome) {
    const ok = outcome.report.exitCode === 0;
    await sql`
      update import_runs set status = ${ok ? 'succeeded' : 'failed'}, source_key = ${outcome.report.sourceKey},
        report = ${jsonb(sql, outcome.report)},
        error = ${ok ? null : outcome.report.exitCode === 4 ? 'verification failed' : 'too many rejected rows'},
        finished_at = now(), updated_at = now()
      where id = ${id}
    `;
  } else {
    await sql`
      update import_runs set status = 'failed', error = ${outcome.error}, finished_at = now(), updated_at = now()
      where id = ${id}
    `;
  }
}

/**
 * Collects progress events and writes them to the run at most once per `intervalMs`, so a
 * fast import does not spend its time updating its own progress row.
 */
export function progressRecorder(sql: Sql, id: string, intervalMs = 1000) {
  const progress: Record<string, TableProgress> = {};
  const startedAt = new Map<string, number>();
  let lastWrite = 0;
  let writing: Promise<unknown> = Promise.resolve();
  const write = () => {
    lastWrite = Date.now();
    const snapshot = structuredClone(progress);
    writing = writing
      .then(
        () =>
          sql`update import_runs set progress = ${jsonb(sql, snapshot)}, updated_at = now() where id = ${id}`,
      )
      .catch(() => {});
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
