import { createSql, databaseNameOf, withDatabase } from '@spywatcher/db';
import {
  type BackupEnv,
  checkRestored,
  createBackup,
  createScratchDatabase,
  releaseReadOnly,
  restoreInto,
  sha256File,
} from './backups.ts';
import type { BackupManifest, Verification } from './catalogue.ts';
import type { HeldWriters, ReplayReport, WriterFence } from './fence.ts';
import type { JobContext } from './jobs.ts';
import { quoteIdent } from './tables.ts';

export const DATABASE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;

export class RestoreRefusedError extends Error {
  readonly code: 'CONFIRMATION_REQUIRED' | 'INVALID_TARGET' | 'TARGET_NOT_ALLOWED' | 'NOT_FOUND';
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
  /** How writers were held from the safety backup to the swap. */
  fence: { ingestInstances: number; readOnlyTarget: boolean } | null;
  /** Events replayed from the JetStream stream into the restored database (null: no ingest held). */
  replay: ReplayReport | null;
  durationMs: number;
}

/** What a restore needs besides the backup environment. */
export interface RestoreDeps {
  /** Pauses and resumes ingest around the swap, and replays the stream afterwards. */
  fence?: WriterFence;
  /** Ingest instances that must answer "paused" before the live database is replaced. */
  requiredIngestInstances: number;
  /** Replay starts this long before the backup's snapshot (publish-to-commit delay). */
  replayMarginMs: number;
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

/** Whether OPS_RESTORE_TARGETS lists `target`, by name or by a prefix ending in `*`. */
export function restoreTargetListed(target: string, listed: string[]): boolean {
  return listed.some((t) => (t.endsWith('*') ? target.startsWith(t.slice(0, -1)) : t === target));
}

/**
 * The refusal rules, checked when the request arrives and again when the job starts: the target
 * is the live database or one OPS_RESTORE_TARGETS lists; the live database or one with
 * connections is overwritten only when `confirm` repeats its name.
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
  const live = databaseNameOf(env.databaseUrl);
  if (target !== live && !restoreTargetListed(target, env.restoreTargets)) {
    const listed = env.restoreTargets.length > 0 ? env.restoreTargets.join(', ') : 'none';
    throw new RestoreRefusedError(
      'TARGET_NOT_ALLOWED',
      `"${target}" is not a restore target: restores may replace only this service's database ("${live}") or those listed in OPS_RESTORE_TARGETS (now: ${listed})`,
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
 * Restores a backup into `target`: restore into a fresh database and verify it (row counts,
 * amcheck) while the target keeps serving; then, for an existing target, hold its writers
 * (ingest paused over NATS, the database made read-only and its sessions ended, so nothing can
 * commit there any more), take the safety backup, swap, replay the stream's events newer than
 * the backup, and let the writers go. A failure before the swap leaves the target as it was.
 */
export async function restoreBackup(
  env: BackupEnv,
  deps: RestoreDeps,
  request: RestoreRequest,
  ctx: JobContext,
): Promise<RestoreResult> {
  const started = performance.now();
  const state = await checkRestoreRequest(env, request);
  const manifest = (await env.catalogue.get(request.backupId)) as BackupManifest;
  ctx.progress(1, 'checking the backup checksum');
  if ((await sha256File(env.catalogue.dumpPath(manifest.id), ctx.signal)) !== manifest.sha256) {
    throw new Error(`backup ${manifest.id} does not match the checksum in its manifest; not restoring it`);
  }
  const fresh = await createScratchDatabase(env.adminUrl, 'sw_restore', ctx);
  let swapped = false;
  let safetyBackupId: string | null = null;
  try {
    ctx.progress(5, `restoring ${manifest.id} into ${fresh.name}`);
    await restoreInto(env, manifest, fresh.url, ctx, [5, 55]);
    const verification = await checkRestored(manifest, fresh.url, ctx, [55, 75]);
    await recordVerification(env, manifest.id, verification, ctx.id, request.target, started);
    if (!verification.ok) {
      throw new Error(
        `the restored data did not verify; target left unchanged: ${verification.problems.join('; ')}`,
      );
    }
    await settleCapturedJobs(fresh.url, manifest.id);
    if (ctx.signal.aborted) throw new Error('cancelled before the swap; target left unchanged');

    let held: HeldWriters | null = null;
    let readOnly = false;
    let forgetReadOnly: (() => Promise<void>) | null = null;
    let replay: ReplayReport | null = null;
    try {
      if (state.exists) {
        ctx.progress(76, `pausing the writers of ${request.target}`);
        held = deps.fence ? await deps.fence.hold(request.target, ctx.signal) : null;
        const instances = held?.instances ?? 0;
        if (state.live && instances < deps.requiredIngestInstances) {
          throw new Error(
            `only ${instances} of ${deps.requiredIngestInstances} ingest instance(s) answered the pause request (OPS_FENCE_INGEST_INSTANCES); target left unchanged`,
          );
        }
        // recorded first: if this process dies now, whoever sweeps makes the target writable again
        forgetReadOnly = await ctx.track({ kind: 'read-only', name: request.target });
        await holdDatabase(env.adminUrl, request.target);
        readOnly = true;
        ctx.progress(78, `taking a safety backup of ${request.target}`);
        safetyBackupId = await safetyBackup(env, request, manifest.id, ctx);
        if (ctx.signal.aborted) throw new Error('cancelled before the swap; target left unchanged');
      }
      ctx.progress(94, `swapping ${fresh.name} in as ${request.target}`);
      await swapIn(env.adminUrl, fresh.name, request.target, state.exists);
      swapped = true;
      readOnly = false;
      await fresh.keep();
      await forgetReadOnly?.();
      if (held && held.instances > 0) {
        const since = new Date(Date.parse(manifest.snapshotAt ?? manifest.createdAt) - deps.replayMarginMs);
        ctx.progress(96, `replaying events stored since ${since.toISOString()} from the stream`);
        replay = await held.replay(since, ctx.signal);
      }
    } catch (error) {
      if (readOnly) {
        await releaseReadOnly(env.adminUrl, request.target).catch(() => {});
        await forgetReadOnly?.();
      }
      throw error;
    } finally {
      await held?.release();
    }
    return {
      backupId: manifest.id,
      target: request.target,
      replacedExisting: state.exists,
      safetyBackupId,
      verification,
      fence: state.exists ? { ingestInstances: held?.instances ?? 0, readOnlyTarget: true } : null,
      replay,
      durationMs: Math.round(performance.now() - started),
    };
  } catch (error) {
    if (!safetyBackupId || swapped) throw error;
    const message = `${(error as Error).message} (the safety backup of ${request.target} taken before the failure is ${safetyBackupId})`;
    throw Object.assign(new Error(message), { cause: error, safetyBackupId, explains: true });
  } finally {
    if (!swapped) await fresh.drop().catch(() => {});
  }
}

/** The safety backup of the target, labelled with the restore that takes it. */
async function safetyBackup(
  env: BackupEnv,
  request: RestoreRequest,
  backupId: string,
  ctx: JobContext,
): Promise<string> {
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
        track: ctx.track,
        progress: (p, m) => ctx.progress(78 + p * 0.15, `safety backup: ${m ?? ''}`),
      },
      {
        kind: 'safety',
        label: `safety backup of ${request.target} before restoring ${backupId} (restore job ${ctx.id})`,
        restoreJobId: ctx.id,
      },
    );
    return safety.id;
  } finally {
    await targetSql.end({ timeout: 5 });
  }
}

/**
 * Nothing can commit in `target` any more: new sessions start read-only, and the sessions
 * already there are ended (their open transactions roll back, so their writes were never
 * confirmed). Only backends of `target` itself are touched.
 */
async function holdDatabase(adminUrl: string, target: string): Promise<void> {
  const admin = createSql({ url: adminUrl, applicationName: 'spywatcher-ops', max: 1 });
  try {
    await admin.unsafe(`alter database ${quoteIdent(target)} set default_transaction_read_only = on`);
    await admin`
      select pg_terminate_backend(pid) from pg_stat_activity
      where datname = ${target} and pid <> pg_backend_pid()
    `;
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** Drops the old target (ending its sessions) and renames the restored database into its place. */
async function swapIn(adminUrl: string, fresh: string, target: string, exists: boolean): Promise<void> {
  const admin = createSql({ url: adminUrl, applicationName: 'spywatcher-ops', max: 1 });
  try {
    if (exists) await admin.unsafe(`drop database if exists ${quoteIdent(target)} with (force)`);
    await admin.unsafe(`alter database ${quoteIdent(fresh)} rename to ${quoteIdent(target)}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** A restore is a verification too: its verdict goes into the backup's manifest. */
async function recordVerification(
  env: BackupEnv,
  backupId: string,
  check: Omit<Verification, 'verifiedAt' | 'durationMs' | 'checksumOk'>,
  jobId: string,
  target: string,
  started: number,
): Promise<void> {
  await env.catalogue
    .update(backupId, (m) => {
      m.verification = {
        ...check,
        via: 'restore',
        jobId,
        target,
        checksumOk: true,
        verifiedAt: new Date().toISOString(),
        durationMs: Math.round(performance.now() - started),
      };
    })
    .catch(() => {
      // the verdict is also in the job's result; a manifest that cannot be written must not fail the restore
    });
}

/**
 * A backup captures the ops jobs that were running when it was taken (at least the backup job
 * itself). In the restored copy they would look alive forever; they are closed with the reason.
 */
async function settleCapturedJobs(url: string, backupId: string): Promise<void> {
  const sql = createSql({ url, applicationName: 'spywatcher-ops', max: 1 });
  try {
    const [t] = await sql<{ t: string | null; scratch: boolean }[]>`
      select to_regclass('ops_jobs')::text as t,
             exists (select 1 from pg_attribute where attrelid = to_regclass('ops_jobs') and attname = 'scratch') as scratch
    `;
    if (!t?.t) return;
    await sql`
      update ops_jobs
      set status = 'failed', finished_at = coalesce(finished_at, now()), updated_at = now(),
          error = ${`still running when backup ${backupId} was taken; this database was restored from that backup`}
      where status = 'running'
    `;
    // their scratch belongs to whatever runs now, not to this copy of the past
    if (t.scratch) await sql`update ops_jobs set scratch = '[]' where scratch <> '[]'`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
