import type { JobColumns, JobTable } from './job-table.ts';

export interface HeartbeatOptions<R extends JobColumns> {
  jobs: JobTable;
  /** The jobs this instance runs now (their heartbeats are renewed). */
  running: () => string[];
  /** The one interval: heartbeats renewed, cancel requests read, the abandon rule applied (default 5 s). */
  everyMs?: number;
  /** A job whose heartbeat is older than this is failed as abandoned (default 60 s). */
  abandonAfterMs?: number;
  /** A job of this instance whose cancel was requested (by any instance). */
  onCancelRequested?: (id: string) => void;
  /** The kind's cleanup of a job this instance found abandoned (its scratch): called once per job. */
  cleanup?: (job: R) => Promise<void>;
  /** Runs after each sweep: the kind's retries of cleanups that failed before (ops' leftover scratch). */
  afterSweep?: () => Promise<void>;
  /** A failed cleanup, or a beat that could not reach the database (the next beat tries again). */
  onError?: (error: unknown, job?: R) => void;
}

export const DEFAULT_HEARTBEAT_MS = 5000;
export const DEFAULT_ABANDON_AFTER_MS = 60_000;

/**
 * One interval per instance: renews the heartbeat of the jobs it runs, hands on the cancel
 * requests made for them, and fails (then cleans up) other instances' jobs whose heartbeat stopped.
 */
export class JobHeartbeat<R extends JobColumns = JobColumns> {
  private readonly options: HeartbeatOptions<R>;
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<unknown> = Promise.resolve();

  constructor(options: HeartbeatOptions<R>) {
    const abandonAfterMs = options.abandonAfterMs ?? DEFAULT_ABANDON_AFTER_MS;
    const everyMs = options.everyMs ?? DEFAULT_HEARTBEAT_MS;
    if (!(everyMs > 0) || !(abandonAfterMs > everyMs)) {
      throw new Error(
        `heartbeat: abandonAfterMs (${abandonAfterMs}) must be longer than the interval everyMs (${everyMs}), which must be above 0`,
      );
    }
    this.options = { ...options, everyMs, abandonAfterMs };
  }

  /** Beats every `everyMs` until stop(); a beat waits for the one before it. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.beating = this.beating.then(() => this.beat()).catch((error) => this.options.onError?.(error));
    }, this.options.everyMs);
    this.timer.unref();
  }

  /** Stops the interval and waits for a beat under way. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.beating;
  }

  /** One beat: renew this instance's heartbeats, hand on cancel requests, then sweep. */
  async beat(): Promise<R[]> {
    const { cancelRequested } = await this.options.jobs.heartbeat(this.options.running());
    for (const id of cancelRequested) this.options.onCancelRequested?.(id);
    return this.sweep();
  }

  /** Applies the abandon rule and cleans up after each job it failed; returns those jobs. */
  async sweep(): Promise<R[]> {
    const abandoned = await this.options.jobs.abandon<R>(this.options.abandonAfterMs!);
    for (const job of abandoned) {
      try {
        await this.options.cleanup?.(job);
      } catch (error) {
        this.options.onError?.(error, job);
      }
    }
    await this.options.afterSweep?.();
    return abandoned;
  }
}
