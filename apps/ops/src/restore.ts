import { createSql, databaseNameOf, withDatabase } from '@spywatcher/db';
import {
  type BackupEnv,
  checkRestored,
  createBackup,
  createScratchDatabase,
  restoreInto,
  sha256File,
} from './backups.ts';
import type { BackupManifest, Verification } from './catalogue.ts';
import type { JobContext } from './jobs.ts';
import { quoteIdent } from './tables.ts';

export const DATABASE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;

export class RestoreRefusedError extends Error {
  readonly code: 'CONFIRMATION_REQUIRED' | 'INVALID_TARGET' | 'NOT_FOUND';
  constructor(code: RestoreRefusedError['code'], message: string) {
    super(message);
    this.name = 'RestoreRefusedError';
    this.code = code;
  }
}

export interface RestoreRequest {
  backupId: string;
  target: string;
  /** Must repeat `target` to overwrite the live database or one with open connections. */
  confirm?: string;
}

export interface TargetState {
  exists: boolean;
  live: boolean;
  connections: number;
}

export interface RestoreResult {
  backupId: string;
  target: string;
  replacedExisting: boolean;
  safetyBackupId: string | null;
  verification: Omit<Verification, 'verifiedAt' | 'durationMs' | 'checksumOk'>;
  durationMs: number;
}

export async function inspectTarget(env: BackupEnv, target: string): Promise<TargetState> {
  const admin = createSql({ url: env.adminUrl, applicationName: 'spywatcher-ops', max: 1 });
  try {
    const [row] = await admin<{ exists: boolean; connections: number }[]>`
      select exists (select 1 from pg_database where datname = ${target}) as exists,
             (select count(*)::int from pg_stat_activity where datname = ${target} and pid <> pg_backend_pid()) as connections
    `;
    return {
      exists: row!.exists,
      connections: row!.connections,
      live: target === databaseNameOf(env.databaseUrl),
    };
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/**
 * The refusal rules, checked when the request arrives and again when the job starts: a target
 * that is the live database or has connections is overwritten only when `confirm` repeats its name.
 */
export async function checkRestoreRequest(env: BackupEnv, request: RestoreRequest): Promise<TargetState> {
  const { target } = request;
  if (!DATABASE_NAME_PATTERN.test(target)) {
    throw new RestoreRefusedError(
      'INVALID_TARGET',
      'target must be a database name of letters, digits, "_" or "-" (at most 63)',
    );
  }
  const reserved = ['template0', 'template1', 'postgres', databaseNameOf(env.adminUrl)];
  if (reserved.includes(target)) {
    throw new RestoreRefusedError(
      'INVALID_TARGET',
      `"${target}" is a system or maintenance database and cannot be a restore target`,
    );
  }
  if (!(await env.catalogue.get(request.backupId))) {
    throw new RestoreRefusedError('NOT_FOUND', `backup ${request.backupId} not found`);
  }
  const state = await inspectTarget(env, target);
  if ((state.live || state.connections > 0) && request.confirm !== target) {
    const why = state.live
      ? `"${target}" is the live database of this service`
      : `"${target}" has ${state.connections} open connection(s)`;
    throw new RestoreRefusedError(
      'CONFIRMATION_REQUIRED',
      `${why}; to overwrite it, repeat its name: {"confirm": "${target}"} (a safety backup is taken first)`,
    );
  }
  return state;
}

/**
 * Restores a backup into `target`: safety backup of an existing target, restore into a fresh
 * database, verification (row counts, amcheck), and only then the swap (drop the old target,
 * rename the new one), so a failed restore leaves the target as it was.
 */
export async function restoreBackup(
  env: BackupEnv,
  request: RestoreRequest,
  ctx: JobContext,
): Promise<RestoreResult> {
  const started = performance.now();
  const state = await checkRestoreRequest(env, request);
  const manifest = (await env.catalogue.get(request.backupId)) as BackupManifest;
  ctx.progress(1, 'checking the backup checksum');
  if ((await sha256File(env.catalogue.dumpPath(manifest.id))) !== manifest.sha256) {
    throw new Error(`backup ${manifest.id} does not match the checksum in its manifest; not restoring it`);
  }
  let safetyBackupId: string | null = null;
  if (state.exists) {
    ctx.progress(5, `taking a safety backup of ${request.target}`);
    const targetUrl = withDatabase(env.adminUrl, request.target);
    const targetSql = createSql({
      url: targetUrl,
      applicationName: 'spywatcher-ops',
      max: 2,
      statementTimeoutMs: 0,
    });
    try {
      const safety = await createBackup(
        env,
        { url: targetUrl, sql: targetSql },
        {
          signal: ctx.signal,
          progress: (p, m) => ctx.progress(5 + p * 0.3, `safety backup: ${m ?? ''}`),
        },
      );
      safetyBackupId = safety.id;
    } finally {
      await targetSql.end({ timeout: 5 });
    }
  }
  const fresh = await createScratchDatabase(env.adminUrl, 'sw_restore');
  let swapped = false;
  try {
    ctx.progress(35, `restoring ${manifest.id} into ${fresh.name}`);
    await restoreInto(env, manifest, fresh.url, ctx, [35, 75]);
    const verification = await checkRestored(manifest, fresh.url, ctx, [75, 92]);
    if (!verification.ok) {
      throw new Error(
        `the restored data did not verify; target left unchanged: ${verification.problems.join('; ')}`,
      );
    }
    if (ctx.signal.aborted) throw new Error('cancelled before the swap; target left unchanged');
    await settleCapturedJobs(fresh.url, manifest.id);
    ctx.progress(94, `swapping ${fresh.name} in as ${request.target}`);
    const admin = createSql({ url: env.adminUrl, applicationName: 'spywatcher-ops', max: 1 });
    try {
      if (state.exists)
        await admin.unsafe(`drop database if exists ${quoteIdent(request.target)} with (force)`);
      await admin.unsafe(`alter database ${quoteIdent(fresh.name)} rename to ${quoteIdent(request.target)}`);
      swapped = true;
    } finally {
      await admin.end({ timeout: 5 });
    }
    return {
      backupId: manifest.id,
      target: request.target,
      replacedExisting: state.exists,
      safetyBackupId,
      verification,
      durationMs: Math.round(performance.now() - started),
    };
  } finally {
    if (!swapped) await fresh.drop();
  }
}

/**
 * A backup captures the ops jobs that were running when it was taken (at least the backup job
 * itself). In the restored copy they would look alive forever; they are closed with the reason.
 */
async function settleCapturedJobs(url: string, backupId: string): Promise<void> {
  const sql = createSql({ url, applicationName: 'spywatcher-ops', max: 1 });
  try {
    const [t] = await sql<{ t: string | null }[]>`select to_regclass('ops_jobs')::text as t`;
    if (!t?.t) return;
    await sql`
      update ops_jobs
      set status = 'failed', finished_at = coalesce(finished_at, now()), updated_at = now(),
          error = ${`still running when backup ${backupId} was taken; this database was restored from that backup`}
      where status = 'running'
    `;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
