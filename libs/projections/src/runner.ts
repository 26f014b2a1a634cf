import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Sql } from '@spywatcher/db';
import { DEFAULT_NATS_NAMES, type NatsNames, subjects } from '@spywatcher/events';
import { Counter, Histogram, type Registry } from '@spywatcher/service';
import type { Projection } from './projection.ts';
import { RebuildConflictError, startRebuildJob } from './rebuild.ts';
import { prepareTables, recordedVersion } from './schema.ts';
import { catchUp, ensureCheckpoints, liveTarget } from './tail.ts';

/** What the runner logs through (a pino or Fastify logger fits). */
export interface RunnerLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface RunnerOptions {
  sql: Sql;
  nats?: NatsConnection;
  names?: NatsNames;
  metrics?: Registry;
  logger?: RunnerLogger;
  projections: readonly Projection[];
  /** Slow safety-net poll, so a lost `stored` notification only delays. */
  pollMs?: number;
  batchSize?: number;
  /** Delay before looking again when rows are held back by an in-flight transaction. */
  retryMs?: number;
  /** Called after each run over all projections (for benchmarks and diagnostics). */
  onRun?: (run: { seconds: number; applied: number; blocked: boolean }) => void;
}

export interface ProjectionRunner {
  /** Runs every projection until caught up (also what a wake-up or poll triggers). */
  runOnce(): Promise<number>;
  /**
   * Runs until no stored event is left unapplied (waiting out in-flight transactions that keep
   * rows unreadable), or throws after `timeoutMs`. For tests, benchmarks and the CLI.
   */
  runUntilCaughtUp(timeoutMs?: number): Promise<number>;
  /** Asks for a run soon; runs requested while one is going coalesce into one more. */
  wake(): void;
  stop(): Promise<void>;
}

/**
 * Starts the runner: listens on `<prefix>.stored.>` and polls every `pollMs`; each wake-up
 * applies batches of every projection until nothing is left below the oldest in-flight
 * transaction. Several runners (several search instances) are safe: each batch takes a
 * per-projection advisory lock and moves the checkpoint compare-and-set. Before a projection's
 * first batch its tables are checked against the declaration (prepareTables): created when
 * missing, adopted when a migration made them, rebuilt when their shape or version differs.
 */
export function startProjectionRunner(options: RunnerOptions): ProjectionRunner {
  const projections = options.projections;
  const batchSize = options.batchSize ?? 5000;
  const log = options.logger;
  const registers = options.metrics ? [options.metrics] : [];
  const applied = new Counter({
    name: 'projection_events_applied_total',
    help: 'Events folded into read models, by projection',
    labelNames: ['projection'],
    registers,
  });
  const batchSeconds = new Histogram({
    name: 'projection_batch_duration_seconds',
    help: 'Time to apply one batch (read, fold, move checkpoint, commit), by projection',
    labelNames: ['projection'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const failures = new Counter({
    name: 'projection_failures_total',
    help: 'Runs of a projection that failed (retried on the next wake-up or poll)',
    labelNames: ['projection'],
    registers,
  });

  let stopped = false;
  let running: Promise<number> | undefined;
  let again = false;
  let blocked = false;
  let retry: NodeJS.Timeout | undefined;
  const retryMs = options.retryMs ?? 200;
  const pollMs = options.pollMs ?? 5000;
  // Projections whose tables have their declared shape (tailed), those waiting for a rebuild, and
  // those whose tables a newer declaration owns (looked at again after a poll interval).
  const ready = new Set<Projection>();
  const rebuilding = new Map<Projection, Promise<void>>();
  const newerUntil = new Map<Projection, number>();
  let versionsCheckedAt = performance.now();

  /**
   * Whether `p`'s tables are ready to tail; starts the rebuild they need otherwise. Returns
   * `waiting` while a rebuild runs (the caller is not caught up yet) and `skipped` when a newer
   * declaration owns the tables.
   */
  async function prepare(p: Projection): Promise<'ready' | 'waiting' | 'skipped'> {
    if (ready.has(p)) return 'ready';
    if (rebuilding.has(p)) return 'waiting';
    if ((newerUntil.get(p) ?? 0) > performance.now()) return 'skipped';
    const state = await prepareTables(options.sql, p);
    if (state === 'rebuild') {
      rebuilding.set(p, rebuildTables(p));
      return 'waiting';
    }
    if (state === 'newer') {
      log?.warn(
        { projection: p.name, version: p.version },
        'read-model tables belong to a newer version of this projection; not tailing them',
      );
      newerUntil.set(p, performance.now() + pollMs);
      return 'skipped';
    }
    if (state !== 'current')
      log?.info({ projection: p.name, version: p.version }, `read-model tables ${state}`);
    await ensureCheckpoints(options.sql, p.name, p.types);
    ready.add(p);
    return 'ready';
  }

  /**
   * Once per poll interval: a projection another process has rebuilt at another version since
   * is prepared again before its next batch (so an older instance stops tailing it).
   */
  async function checkVersions(): Promise<void> {
    if (performance.now() - versionsCheckedAt < pollMs) return;
    versionsCheckedAt = performance.now();
    for (const p of ready) {
      if ((await recordedVersion(options.sql, p.name)) !== p.version) ready.delete(p);
    }
  }

  /**
   * Rebuilds `p` into tables of its declared shape and version (a recorded job, like one started
   * over HTTP). After a failure, or while another process rebuilds it, waits a poll interval
   * before looking again. The live tables keep serving meanwhile; they are not tailed, since
   * the declaration's statements may not fit them.
   */
  async function rebuildTables(p: Projection): Promise<void> {
    try {
      log?.warn(
        { projection: p.name, version: p.version },
        'read-model tables differ from the declaration; rebuilding',
      );
      const { done } = await startRebuildJob(options.sql, p);
      const job = await done;
      if (job.status !== 'succeeded') throw new Error(`rebuild job ${job.id} failed: ${job.error}`);
    } catch (error) {
      if (!(error instanceof RebuildConflictError)) {
        failures.inc({ projection: p.name });
        log?.error({ err: error, projection: p.name }, 'projection rebuild failed; retrying later');
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs).unref());
    } finally {
      rebuilding.delete(p);
      wake();
    }
  }

  async function runAll(): Promise<number> {
    const started = performance.now();
    try {
      return await runProjections();
    } finally {
      options.onRun?.({ seconds: (performance.now() - started) / 1000, applied: lastApplied, blocked });
    }
  }

  let lastApplied = 0;
  async function runProjections(): Promise<number> {
    let total = 0;
    blocked = false;
    await checkVersions();
    // Projections are independent (own tables, own checkpoints, own lock): run them side by side
    // so one wake-up costs the slowest projection's time, not the sum.
    await Promise.all(
      projections.map(async (p) => {
        if (stopped) return;
        try {
          const standing = await prepare(p);
          if (standing !== 'ready') {
            blocked ||= standing === 'waiting';
            return;
          }
          const result = await catchUp(options.sql, p, liveTarget(p), batchSize, (_type, n, s) => {
            applied.inc({ projection: p.name }, n);
            batchSeconds.observe({ projection: p.name }, s);
          });
          total += result.applied;
          blocked ||= result.blocked;
        } catch (error) {
          blocked = true;
          failures.inc({ projection: p.name });
          log?.error({ err: error, projection: p.name }, 'projection run failed; retrying later');
        }
      }),
    );
    // Rows we saw but could not read yet (an older transaction still in flight): look again
    // soon instead of at the next poll, so one slow writer does not add seconds of lag.
    if (blocked && !stopped && !retry) {
      retry = setTimeout(() => {
        retry = undefined;
        wake();
      }, retryMs);
      retry.unref();
    }
    lastApplied = total;
    return total;
  }

  function runOnce(): Promise<number> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      let total = 0;
      do {
        again = false;
        total += await runAll();
      } while (again && !stopped);
      return total;
    })().finally(() => {
      running = undefined;
    });
    return running;
  }

  function wake(): void {
    if (stopped) return;
    runOnce().catch((error) => log?.error({ err: error }, 'projection run failed'));
  }

  let subscription: Subscription | undefined;
  if (options.nats) {
    subscription = options.nats.subscribe(subjects(options.names ?? DEFAULT_NATS_NAMES).allStored, {
      callback: (error) => {
        if (error) log?.warn({ err: error }, 'stored-notification subscription error');
        else wake();
      },
    });
  }
  const timer = setInterval(wake, pollMs);
  timer.unref();
  wake();

  async function runUntilCaughtUp(timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let total = await runOnce();
    while (blocked) {
      if (Date.now() > deadline) throw new Error(`projections not caught up after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
      total += await runOnce();
    }
    return total;
  }

  return {
    runOnce,
    runUntilCaughtUp,
    wake,
    async stop() {
      stopped = true;
      clearInterval(timer);
      if (retry) clearTimeout(retry);
      subscription?.unsubscribe();
      await running?.catch(() => {});
    },
  };
}
