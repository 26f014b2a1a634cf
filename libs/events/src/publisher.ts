import { JetStreamApiError, jetstream, type PubAck } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { SpywatcherEvent } from './schemas.ts';
import { DEFAULT_NATS_NAMES, type NatsNames, subjects } from './subjects.ts';
import { describeErrors, type EventFieldError, validateEvent } from './validate.ts';

export interface PublisherOptions {
  nc: NatsConnection;
  names?: NatsNames;
  /** Events sent and not yet acknowledged by JetStream at most (default 256). */
  maxInFlight?: number;
  /** Further attempts after the first one fails (default 5). */
  retries?: number;
  /** How long one attempt waits for the JetStream ack (default 5000 ms). */
  ackTimeoutMs?: number;
  /** Base of the jittered exponential backoff between attempts (default 100 ms). */
  backoffMs?: number;
  /** Longest wait between two attempts (default 5000 ms), so many retries span an outage evenly. */
  maxBackoffMs?: number;
  /** Check events against the schema before sending (default true). */
  validate?: boolean;
  /** Called once for each event that could not be published, after the last attempt. */
  onError?: (failure: PublishFailure) => void;
}

export interface PublishResult {
  id: string;
  type: string;
  /** Stream sequence of the stored message. */
  seq: number;
  /** True when JetStream had already seen this id within its duplicate window. */
  duplicate: boolean;
  attempts: number;
}

export interface PublishFailure {
  id: string;
  type: string;
  attempts: number;
  /**
   * `unknown`: an attempt reached the server or may have (its ack was lost: a timeout or a
   * dropped connection), so the event may be stored; publishing it again with the same id is
   * safe (JetStream and ingest deduplicate by id). `failed`: it was certainly not stored
   * (refused by validation, by JetStream, or no stream takes its subject).
   */
  outcome: 'unknown' | 'failed';
  error: Error;
  /** Set when the event was refused by local validation (never sent). */
  errors?: EventFieldError[];
}

export class PublishError extends Error {
  readonly failure: PublishFailure;
  constructor(failure: PublishFailure) {
    super(
      failure.outcome === 'unknown'
        ? `publishing event ${failure.id} (${failure.type}): outcome unknown after ${failure.attempts} attempt(s), no ack (${failure.error.message}); it may be stored, and it is safe to publish it again with the same id`
        : `publishing event ${failure.id} (${failure.type}) failed after ${failure.attempts} attempt(s): ${failure.error.message}`,
    );
    this.name = 'PublishError';
    this.failure = failure;
  }
}

export interface PublisherStats {
  inFlight: number;
  published: number;
  duplicates: number;
  /** Certainly not stored. */
  failed: number;
  /** Given up without an ack: may be stored, safe to publish again with the same id. */
  unknown: number;
  retried: number;
}

export interface Publisher {
  /**
   * Publishes one event and resolves with its ack; rejects with PublishError after the last
   * retry (its `failure.outcome` says whether the event may be stored anyway).
   */
  publish(event: SpywatcherEvent): Promise<PublishResult>;
  /**
   * Resolves as soon as the event holds a slot in the in-flight window (backpressure for
   * fast producers); the ack is awaited in the background and failures go to `onError`.
   */
  send(event: SpywatcherEvent): Promise<void>;
  /** Publishes many events through the window; resolves when all are acked or failed. */
  publishAll(
    events: Iterable<SpywatcherEvent>,
  ): Promise<{ published: number; duplicates: number; failed: PublishFailure[] }>;
  /** Waits until nothing is in flight. */
  flush(): Promise<void>;
  stats(): PublisherStats;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * An answer that proves the message was not stored: JetStream refused it, or no stream
 * listens on the subject. Anything else (a timeout, a dropped connection) leaves the outcome
 * unknown: the message may have reached the stream and only its ack been lost.
 */
function isRefusal(error: unknown): boolean {
  // JetStreamNotEnabled (no responders) is not exported by the package's main entry.
  return error instanceof JetStreamApiError || (error as Error | null)?.name === 'JetStreamNotEnabled';
}

/**
 * A typed JetStream publisher for bots. Every event goes to `<prefix>.events.<type>` with
 * `Nats-Msg-Id` = event id, so a retry after a lost ack (or a bot restart that republishes)
 * is dropped by the server within its duplicate window, and by ingest's id registry after it.
 * That is what makes retrying safe: every attempt of an event carries the same message id.
 */
export function createPublisher(options: PublisherOptions): Publisher {
  const js = jetstream(options.nc);
  const subject = subjects(options.names ?? DEFAULT_NATS_NAMES);
  const maxInFlight = Math.max(1, options.maxInFlight ?? 256);
  const retries = Math.max(0, options.retries ?? 5);
  const ackTimeoutMs = options.ackTimeoutMs ?? 5000;
  const backoffMs = options.backoffMs ?? 100;
  const maxBackoffMs = options.maxBackoffMs ?? 5000;
  const validate = options.validate ?? true;
  const stats: PublisherStats = {
    inFlight: 0,
    published: 0,
    duplicates: 0,
    failed: 0,
    unknown: 0,
    retried: 0,
  };
  const waiting: (() => void)[] = [];
  let idle: (() => void)[] = [];

  async function acquire(): Promise<void> {
    if (stats.inFlight < maxInFlight) {
      stats.inFlight++;
      return;
    }
    await new Promise<void>((resolve) => waiting.push(resolve));
  }
  function release(): void {
    const next = waiting.shift();
    if (next) {
      next(); // the slot passes straight to the next waiter
      return;
    }
    stats.inFlight--;
    if (stats.inFlight === 0) {
      const done = idle;
      idle = [];
      for (const r of done) r();
    }
  }

  async function attempt(event: SpywatcherEvent): Promise<PublishResult> {
    const payload = JSON.stringify(event);
    let lastError: Error | undefined;
    let maybeStored = false;
    for (let n = 1; n <= retries + 1; n++) {
      try {
        const ack: PubAck = await js.publish(subject.event(event.type), payload, {
          msgID: event.id,
          timeout: ackTimeoutMs,
        });
        stats.published++;
        if (ack.duplicate) stats.duplicates++;
        return { id: event.id, type: event.type, seq: ack.seq, duplicate: ack.duplicate, attempts: n };
      } catch (error) {
        lastError = error as Error;
        if (!isRefusal(error)) maybeStored = true;
        if (n > retries) break;
        stats.retried++;
        await sleep(Math.min(maxBackoffMs, backoffMs * 2 ** (n - 1)) * (0.5 + Math.random()));
      }
    }
    const failure: PublishFailure = {
      id: event.id,
      type: event.type,
      attempts: retries + 1,
      outcome: maybeStored ? 'unknown' : 'failed',
      error: lastError!,
    };
    if (maybeStored) stats.unknown++;
    else stats.failed++;
    throw new PublishError(failure);
  }

  function refuseInvalid(event: SpywatcherEvent): PublishError | undefined {
    if (!validate) return undefined;
    const result = validateEvent(event);
    if (result.ok) return undefined;
    stats.failed++;
    return new PublishError({
      id: String((event as { id?: unknown }).id),
      type: String((event as { type?: unknown }).type),
      attempts: 0,
      outcome: 'failed',
      error: new Error(`invalid event: ${describeErrors(result.errors)}`),
      errors: result.errors,
    });
  }

  async function publish(event: SpywatcherEvent): Promise<PublishResult> {
    const invalid = refuseInvalid(event);
    if (invalid) throw invalid;
    await acquire();
    try {
      return await attempt(event);
    } finally {
      release();
    }
  }

  async function send(event: SpywatcherEvent): Promise<void> {
    const invalid = refuseInvalid(event);
    if (invalid) {
      options.onError?.(invalid.failure);
      return;
    }
    await acquire();
    attempt(event)
      .catch((error: PublishError) => options.onError?.(error.failure))
      .finally(release);
  }

  return {
    publish,
    send,
    async publishAll(events) {
      const failed: PublishFailure[] = [];
      let published = 0;
      let duplicates = 0;
      const pending: Promise<void>[] = [];
      for (const event of events) {
        const invalid = refuseInvalid(event);
        if (invalid) {
          failed.push(invalid.failure);
          continue;
        }
        await acquire();
        pending.push(
          attempt(event)
            .then((r) => {
              published++;
              if (r.duplicate) duplicates++;
            })
            .catch((error: PublishError) => {
              failed.push(error.failure);
              options.onError?.(error.failure);
            })
            .finally(release),
        );
      }
      await Promise.all(pending);
      return { published, duplicates, failed };
    },
    flush() {
      if (stats.inFlight === 0) return Promise.resolve();
      return new Promise<void>((resolve) => idle.push(resolve));
    },
    stats: () => ({ ...stats }),
  };
}
