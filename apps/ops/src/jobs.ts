import type { NatsConnection } from '@nats-io/transport-node';
import { jsonb, type Sql } from '@spywatcher/db';
import { DEFAULT_NATS_NAMES, type NatsNames, subjects, uuidv7 } from '@spywatcher/events';
import { JobHeartbeat, JobTable } from '@spywatcher/jobs';
import { type LeasedJobRow, leftoverScratch, type Scratch } from './job-lease.ts';

export type JobStatus = 'running' | 'succeeded' | 'failed' | 'cancelled';
export type JobTrigger = 'http' | 'nats' | 'schedule' | 'cli' | 'internal';

export interface JobProgress {
  percent: number;
  message?: string;
}

export interface Job {
  id: string;
  kind: string;
  status: JobStatus;
  trigger: JobTrigger;
  params: Record<string, unknown>;
  progress: JobProgress;
  result: unknown;
  error: string | null;
  requestedBy: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface JobContext {
  id: string;
  /** Aborted when the job is cancelled or the service stops. */
  signal: AbortSignal;
  progress(percent: number, message?: string): void;
  /** The PostgreSQL backend doing the job's work, so a cancel can pg_cancel_backend it. */
  setBackendPid(pid: number | null): void;
  /**
   * Records something the job creates outside ops_jobs (a scratch database, a partial file)
   * BEFORE it is created, so it is removed even if this process dies; the returned function
   * forgets it once the job has removed (or kept) it itself.
   */
  track(item: Scratch): Promise<() => Promise<void>>;
}

export interface JobSpec {
  kind: string;
  trigger: JobTrigger;
  params?: Record<string, unknown>;
  /** Jobs sharing a key never run at the same time (enforced by a unique index). */
  exclusiveKey?: string;
  requestedBy?: string;
}

export class JobConflictError extends Error {
  readonly runningJobId: string | null;
  constructor(message: string, runningJobId: string | null) {
    super(message);
    this.name = 'JobConflictError';
    this.runningJobId = runningJobId;
  }
}

export class JobCancelledError extends Error {
  constructor(message = 'cancelled on request') {
    super(message);
    this.name = 'JobCancelledError';
  }
}

interface Running {
  job: Job;
  controller: AbortController;
  backendPid: number | null;
  done: Promise<Job>;
  cancelReason?: string;
  scratch: Scratch[];
}

export interface JobRunnerOptions {
  sql: Sql;
  nats?: NatsConnection;
  names?: NatsNames;
  /** Scrubs secrets from error messages before they are stored or published. */
  redact?: (text: string) => string;
  onError?: (job: Job, error: unknown) => void;
  /** Milliseconds between progress writes to PostgreSQL (NATS gets every update). */
  persistEveryMs?: number;
  /** Every state change, in process (the CLI's progress bar). */
  onUpdate?: (job: Job) => void;
  /** This process's name in ops_jobs.owner (default host:pid:random). */
  instance?: string;
  /** How often running jobs' heartbeats are renewed and stale ones looked for (default 5 s). */
  heartbeatMs?: number;
  /** A running job whose heartbeat is older than this is failed as abandoned (default 60 s). */
  abandonAfterMs?: number;
  /** Removes a dead job's leftovers (scratch databases, partial files). */
  cleanup?: (items: Scratch[]) => Promise<void>;
}

/**
 * Runs jobs in this process and keeps their state in `ops_jobs`. Every state change is written
 * as an upsert, so a job survives even the database being swapped under it (a restore of the
 * live database), and published on `<prefix>.ops.jobs.<id>`.
 */
export class JobRunner {
  private readonly running = new Map<string, Running>();
  private readonly opts: JobRunnerOptions;
  readonly instance: string;
  private stopping = false;
  /** The lifecycle and abandon rule shared with import runs and projection rebuilds. */
  private readonly heartbeat: JobHeartbeat<LeasedJobRow>;
  private cleaned = 0;

  constructor(opts: JobRunnerOptions) {
    this.opts = opts;
    const jobs = new JobTable({ sql: opts.sql, table: 'ops_jobs', label: 'ops', owner: opts.instance });
    this.instance = jobs.owner;
    this.heartbeat = new JobHeartbeat<LeasedJobRow>({
      jobs,
      running: () => this.runningIds(),
      everyMs: opts.heartbeatMs,
      abandonAfterMs: opts.abandonAfterMs,
      onCancelRequested: (id) => {
        if (!this.running.get(id)?.cancelReason) void this.cancel(id);
      },
      cleanup: (job) => this.removeLeftovers(job),
      // leftovers a finished job could not remove itself, or a cleanup that failed: tried again
      afterSweep: async () => {
        for (const job of await leftoverScratch(opts.sql)) {
          await this.removeLeftovers(job).catch((error) => opts.onError?.(fromRow(job), error));
        }
      },
      onError: (error, job) => {
        // a beat that failed (the database away, or swapped by a restore) is retried at the next
        if (job) opts.onError?.(fromRow(job), error);
      },
    });
  }

  /**
   * Fails running jobs nobody looks after any more (stale heartbeat, or an owner process on this
   * host that no longer exists) and removes their leftovers. Safe to run from every instance.
   */
  async sweep(): Promise<{ abandoned: string[]; cleaned: number }> {
    const before = this.cleaned;
    const abandoned = await this.heartbeat.sweep();
    return { abandoned: abandoned.map((job) => job.id), cleaned: this.cleaned - before };
  }

  /** Renews the heartbeat of this process's jobs and sweeps abandoned ones, every heartbeatMs. */
  startHeartbeat(): void {
    this.heartbeat.start();
  }

  private async removeLeftovers(job: LeasedJobRow): Promise<void> {
    if (job.scratch.length === 0) return;
    await this.opts.cleanup?.(job.scratch);
    await this.opts.sql`update ops_jobs set scratch = '[]' where id = ${job.id}`;
    this.cleaned += job.scratch.length;
  }

  async start<R>(
    spec: JobSpec,
    work: (ctx: JobContext) => Promise<R>,
  ): Promise<{ job: Job; done: Promise<Job> }> {
    if (this.stopping) throw new JobConflictError('the ops service is shutting down', null);
    const now = new Date().toISOString();
    const job: Job = {
      id: uuidv7(),
      kind: spec.kind,
      status: 'running',
      trigger: spec.trigger,
      params: spec.params ?? {},
      progress: { percent: 0, message: 'starting' },
      result: null,
      error: null,
      requestedBy: spec.requestedBy ?? null,
      createdAt: now,
      startedAt: now,
      finishedAt: null,
    };
    try {
      await this.persist(job, spec.exclusiveKey ?? null, null);
    } catch (error) {
      if ((error as { code?: string }).code === '23505' && spec.exclusiveKey) {
        const [other] = await this.opts.sql<{ id: string }[]>`
          select id from ops_jobs where exclusive_key = ${spec.exclusiveKey} and status = 'running'
        `;
        throw new JobConflictError(
          `a ${spec.kind} job is already running${other ? ` (${other.id})` : ''}; wait for it or cancel it`,
          other?.id ?? null,
        );
      }
      throw error;
    }
    const controller = new AbortController();
    const entry: Running = {
      job,
      controller,
      backendPid: null,
      done: Promise.resolve(job),
      scratch: [],
    };
    this.running.set(job.id, entry);
    this.publish(job);

    let lastWrite = 0;
    let trailing: NodeJS.Timeout | null = null;
    let pendingWrite: Promise<void> = Promise.resolve();
    const ctx: JobContext = {
      id: job.id,
      signal: controller.signal,
      progress: (percent, message) => {
        job.progress = { percent: Math.max(0, Math.min(100, Math.round(percent * 10) / 10)), message };
        this.publish(job);
        const every = this.opts.persistEveryMs ?? 500;
        const write = () => {
          trailing = null;
          lastWrite = Date.now();
          pendingWrite = pendingWrite
            .then(() => this.persist(job, spec.exclusiveKey ?? null, entry.backendPid))
            .catch(() => {});
        };
        const wait = every - (Date.now() - lastWrite);
        if (wait <= 0) write();
        // the last update before a long step (an upload) must reach the row too
        else trailing ??= setTimeout(write, wait);
      },
      setBackendPid: (pid) => {
        entry.backendPid = pid;
        pendingWrite = pendingWrite
          .then(() => this.persist(job, spec.exclusiveKey ?? null, pid))
          .catch(() => {});
      },
      track: async (item) => {
        entry.scratch.push(item);
        await this.saveScratch(job.id, entry.scratch);
        return async () => {
          entry.scratch = entry.scratch.filter((x) => x !== item);
          await this.saveScratch(job.id, entry.scratch).catch(() => {});
        };
      },
    };

    entry.done = (async () => {
      try {
        // work that returned has done what it set out to do, even if a cancel came late
        const result = await work(ctx);
        job.status = 'succeeded';
        job.result = result ?? null;
        job.progress = { percent: 100, message: 'done' };
      } catch (error) {
        const cancelled = controller.signal.aborted || error instanceof JobCancelledError;
        job.status = cancelled ? 'cancelled' : 'failed';
        const detail = (error as Error)?.message || String(error);
        // a cancel that interrupted something worth knowing (a safety backup taken) says so
        const message = cancelled
          ? `${entry.cancelReason ?? 'cancelled on request'}${(error as { explains?: boolean })?.explains ? `: ${detail}` : ''}`
          : detail;
        job.error = this.opts.redact ? this.opts.redact(message) : message;
        if (!cancelled) this.opts.onError?.(job, error);
      }
      job.finishedAt = new Date().toISOString();
      if (trailing) clearTimeout(trailing);
      await pendingWrite;
      if (entry.scratch.length > 0) {
        // whatever the work could not remove itself
        try {
          await this.opts.cleanup?.(entry.scratch);
          entry.scratch = [];
          await this.saveScratch(job.id, []);
        } catch (error) {
          this.opts.onError?.(job, error);
        }
      }
      try {
        await this.persist(job, spec.exclusiveKey ?? null, null);
      } catch (error) {
        this.opts.onError?.(job, error);
      }
      this.publish(job);
      this.running.delete(job.id);
      return job;
    })();
    return { job: { ...job }, done: entry.done };
  }

  async get(id: string): Promise<Job | null> {
    const [row] = await this.opts.sql<JobRow[]>`select * from ops_jobs where id = ${id}`;
    return row ? fromRow(row) : null;
  }

  async list(filter: { kind?: string; status?: string; limit?: number } = {}): Promise<Job[]> {
    const sql = this.opts.sql;
    const rows = await sql<JobRow[]>`
      select * from ops_jobs
      where true
        ${filter.kind ? sql`and kind = ${filter.kind}` : sql``}
        ${filter.status ? sql`and status = ${filter.status}` : sql``}
      order by created_at desc, id desc
      limit ${filter.limit ?? 50}
    `;
    return rows.map(fromRow);
  }

  /** Cancels a job running in this process; false when it is not running here. */
  async cancel(id: string, reason = 'cancelled on request'): Promise<boolean> {
    const entry = this.running.get(id);
    if (!entry) return false;
    entry.cancelReason = reason;
    entry.controller.abort(new JobCancelledError(reason));
    entry.job.progress = { ...entry.job.progress, message: `cancelling: ${reason}` };
    this.publish(entry.job);
    if (entry.backendPid !== null) {
      // bounded: a cancel must answer even when the database does not
      await withTimeout(this.opts.sql`select pg_cancel_backend(${entry.backendPid}::int)`, 500).catch(
        () => {},
      );
    }
    return true;
  }

  /** Resolves when the job finishes (it must be running in this process). */
  wait(id: string): Promise<Job> | null {
    return this.running.get(id)?.done ?? null;
  }

  /** The in-memory state of a job running in this process (fresher than its row). */
  current(id: string): Job | null {
    const entry = this.running.get(id);
    return entry ? { ...entry.job } : null;
  }

  /** Waits at most `ms` for a job of this process to finish; false when it is still running. */
  async settle(id: string, ms: number): Promise<boolean> {
    const done = this.wait(id);
    if (!done) return true;
    return (await withTimeout(done, ms).catch(() => null)) !== null;
  }

  runningIds(): string[] {
    return [...this.running.keys()];
  }

  /** Cancels what still runs (recorded as cancelled by the shutdown) and waits for it. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.heartbeat.stop();
    const entries = [...this.running.values()];
    await Promise.all(
      entries.map((e) => this.cancel(e.job.id, 'cancelled: the ops service was shutting down')),
    );
    await Promise.allSettled(entries.map((e) => e.done));
  }

  private async persist(job: Job, exclusiveKey: string | null, backendPid: number | null): Promise<void> {
    const sql = this.opts.sql;
    const scratch = this.running.get(job.id)?.scratch ?? [];
    // read write: a restore makes its target read-only for new sessions, and that target may be
    // the database holding this table; the job's own record must still be written
    await sql.begin(
      'read write',
      (tx) => tx`
      insert into ops_jobs (id, kind, status, trigger, exclusive_key, params, progress, result, error,
                            requested_by, backend_pid, created_at, started_at, finished_at, updated_at,
                            owner, heartbeat_at, scratch)
      values (${job.id}, ${job.kind}, ${job.status}, ${job.trigger}, ${exclusiveKey}, ${jsonb(sql, job.params)},
              ${jsonb(sql, job.progress)}, ${job.result === null ? null : jsonb(sql, job.result)},
              ${job.error}, ${job.requestedBy}, ${backendPid}, ${job.createdAt}, ${job.startedAt},
              ${job.finishedAt}, now(), ${this.instance}, now(), ${jsonb(sql, scratch)})
      on conflict (id) do update set
        status = excluded.status, progress = excluded.progress, result = excluded.result,
        error = excluded.error, backend_pid = excluded.backend_pid,
        finished_at = excluded.finished_at, updated_at = now(), heartbeat_at = now(),
        scratch = excluded.scratch
      -- a job another instance already declared abandoned stays failed
      where ops_jobs.status = 'running'
    `,
    );
  }

  private async saveScratch(id: string, scratch: Scratch[]): Promise<void> {
    const sql = this.opts.sql;
    await retryDisconnected(() =>
      sql.begin(
        'read write',
        (tx) => tx`update ops_jobs set scratch = ${jsonb(sql, scratch)} where id = ${id}`,
      ),
    );
  }

  private publish(job: Job): void {
    this.opts.onUpdate?.(job);
    const nats = this.opts.nats;
    if (!nats || nats.isClosed()) return;
    try {
      nats.publish(
        subjects(this.opts.names ?? DEFAULT_NATS_NAMES).opsJob(job.id),
        JSON.stringify({
          id: job.id,
          kind: job.kind,
          status: job.status,
          progress: job.progress,
          error: job.error,
          result: job.status === 'running' ? undefined : job.result,
        }),
      );
    } catch {
      // progress events are best effort; the job row is the record
    }
  }
}

export interface JobRow {
  id: string;
  kind: string;
  status: JobStatus;
  trigger: JobTrigger;
  params: Record<string, unknown>;
  progress: JobProgress;
  result: unknown;
  error: string | null;
  requested_by: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

const DISCONNECTED = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'ECONNRESET',
  'EPIPE',
  '57P01', // admin_shutdown: the session was terminated (a restore ending the target's sessions)
]);

/**
 * The job's own bookkeeping survives a pooled connection being cut under it (a restore ends
 * every session of the database this table lives in): one fresh attempt, then a second.
 */
async function retryDisconnected<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= 3 || !DISCONNECTED.has(String((error as { code?: unknown }).code))) throw error;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export function fromRow(r: JobRow): Job {
  return {
    id: r.id,
    kind: r.kind,
    status: r.status,
    trigger: r.trigger,
    params: r.params,
    progress: r.progress,
    result: r.result,
    error: r.error,
    requestedBy: r.requested_by,
    createdAt: r.created_at.toISOString(),
    startedAt: r.started_at?.toISOString() ?? null,
    finishedAt: r.finished_at?.toISOString() ?? null,
  };
}
