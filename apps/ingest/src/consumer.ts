import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { PartitionCache, Sql } from '@spywatcher/db';
import {
  decodeEventPayload,
  describeErrors,
  type EventFieldError,
  isEventType,
  type NatsNames,
  type SpywatcherEvent,
  subjects,
  validateEvent,
} from '@spywatcher/events';
import type { FastifyBaseLogger } from 'fastify';
import type { IngestMetrics } from './metrics.ts';
import { publishStored } from './notify.ts';
import type { WriteGate } from './pause.ts';
import { conflictReason, type EventOutcome, type StoreOutcome, storeIsolating } from './store.ts';
import { Tally } from './tally.ts';

export interface ConsumerOptions {
  sql: Sql;
  nc: NatsConnection;
  names: NatsNames;
  cache: PartitionCache;
  metrics: IngestMetrics;
  logger: FastifyBaseLogger;
  durable: string;
  batchSize: number;
  batchTimeMs: number;
  /**
   * Batches stored at the same time, each in its own transaction and acked after its own
   * commit (default 2): while one batch commits the next is validated and inserted.
   */
  concurrency?: number;
  /** Deliveries of a message that keeps failing to store before it is dead-lettered. */
  maxDeliver: number;
  /**
   * JetStream redelivers a message not acked (nor marked in progress) within this: how soon the
   * messages of a crashed instance come back. Held messages are marked in progress every third of it.
   */
  ackWaitMs: number;
  /** Longest delay before a failed message is delivered again (nak delays and ack-wait backoff). */
  backoffMaxMs?: number;
  /** Writes wait here while ops holds the writers (a restore); see pause.ts. */
  gate?: WriteGate;
  /**
   * Test seam: runs after the commit and before the acks. Throwing here simulates a crash
   * between the two (the messages are not acked and come back).
   */
  afterCommit?: (outcome: StoreOutcome) => void | Promise<void>;
}

export interface IngestConsumer {
  /** Stops pulling, lets the batch in hand finish (commit + ack), and returns. */
  stop(): Promise<void>;
  /** True while the loop is consuming without errors. */
  healthy(): boolean;
}

/** A dead letter: the original payload as received, and why it could not be stored. */
export interface DeadLetter {
  /** invalid: the event can never be stored as sent; conflict: its id is already stored with
   * other content; undeliverable: storing kept failing for another reason. */
  reason: 'invalid' | 'conflict' | 'undeliverable';
  message: string;
  errors?: EventFieldError[];
  subject: string;
  stream_seq: number;
  deliveries: number;
  failed_at: string;
  payload: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CONSUMER_NOT_FOUND = 10014;
/** Seconds without a stored batch while messages wait after which the consumer counts as stalled. */
const STALL_AFTER_S = 15;

/** Redelivery delay after a transient failure: 1 s, 2 s, 4 s … capped at `maxMs` (60 s). */
export function redeliveryDelayMs(deliveryCount: number, maxMs = 60_000): number {
  return Math.min(maxMs, 1000 * 2 ** Math.max(0, deliveryCount - 1));
}

/**
 * The ack-wait of each delivery when the previous one timed out (a crashed or stalled instance):
 * the short ack wait first, then doubling up to the maximum, one entry per delivery at most.
 */
export function ackWaitBackoffMs(ackWaitMs: number, maxDeliver: number, maxMs = 60_000): number[] {
  const steps: number[] = [];
  for (let wait = ackWaitMs; steps.length < maxDeliver; wait *= 2) {
    steps.push(Math.min(wait, Math.max(maxMs, ackWaitMs)));
    if (wait >= maxMs) break;
  }
  return steps;
}

/** The durable consumer's settings, from ingest's own (applied to an existing consumer on start). */
export function durableConfig(o: ConsumerOptions) {
  const concurrency = Math.max(1, o.concurrency ?? 2);
  return {
    durable_name: o.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: subjects(o.names).allEvents,
    ack_wait: o.ackWaitMs * 1_000_000,
    backoff: ackWaitBackoffMs(o.ackWaitMs, o.maxDeliver, o.backoffMaxMs).map((ms) => ms * 1_000_000),
    // One delivery beyond ingest's own limit: ingest dead-letters with the reason at maxDeliver,
    // so the server's limit (which drops silently) is only a backstop that is never reached.
    max_deliver: o.maxDeliver + 1,
    // Room for a crashed instance's messages (until their ack wait ends) and several live ones.
    max_ack_pending: Math.max(20_000, o.batchSize * concurrency * 4),
  };
}

async function ensureDurable(jsm: JetStreamManager, o: ConsumerOptions): Promise<void> {
  const config = durableConfig(o);
  try {
    await jsm.consumers.info(o.names.stream, o.durable);
    const { durable_name: _d, deliver_policy: _p, ...update } = config;
    await jsm.consumers.update(o.names.stream, o.durable, update);
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === CONSUMER_NOT_FOUND) {
      await jsm.consumers.add(o.names.stream, config);
    } else {
      throw error;
    }
  }
}

interface Parsed {
  msg: JsMsg;
  event?: SpywatcherEvent;
  type: string;
  errors?: EventFieldError[];
}

/** Decodes and validates one message; whatever goes wrong becomes this message's own rejection. */
function parse(msg: JsMsg, prefix: string): Parsed {
  const subjectType = msg.subject.slice(`${prefix}.events.`.length);
  try {
    return parseChecked(msg, subjectType);
  } catch (error) {
    const reason = `the event could not be checked: ${(error as Error)?.message ?? String(error)}`;
    return { msg, type: subjectType, errors: [{ field: '', code: 'unprocessable', reason }] };
  }
}

function parseChecked(msg: JsMsg, subjectType: string): Parsed {
  const decoded = decodeEventPayload(msg.data);
  if (!decoded.ok) return { msg, type: subjectType, errors: [decoded.error] };
  const result = validateEvent(decoded.value);
  if (!result.ok) return { msg, type: result.type ?? subjectType, errors: result.errors };
  if (result.event.type !== subjectType) {
    return {
      msg,
      type: result.event.type,
      errors: [
        {
          field: '/type',
          code: 'invalid_value',
          reason: `type "${result.event.type}" was published on the subject of "${subjectType}"`,
        },
      ],
    };
  }
  return { msg, type: subjectType, event: result.event };
}

/**
 * The NATS half of ingest: a durable pull consumer, batches by count and time, validation,
 * one transaction per batch, acks only after the commit, dead letters with the reason.
 */
export async function startConsumer(o: ConsumerOptions): Promise<IngestConsumer> {
  const js = jetstream(o.nc);
  const jsm = await jetstreamManager(o.nc);
  await ensureDurable(jsm, o);
  const s = subjects(o.names);
  const typeLabel = (t: string) => (isEventType(t) ? t : 'unknown');

  o.metrics.setLagSource(async () => {
    const info = await jsm.consumers.info(o.names.stream, o.durable);
    return { pending: info.num_pending, ackPending: info.num_ack_pending };
  });

  let stopped = false;
  let signalStop!: () => void;
  const stopping = new Promise<void>((resolve) => {
    signalStop = resolve;
  });
  /** A backoff that ends early when the consumer is stopped, so shutdown is never held up by it. */
  const pause = (ms: number) => Promise.race([sleep(ms), stopping]);
  let current: ConsumerMessages | undefined;
  let ok = true;
  let failures = 0;

  /** When a batch was last stored (or answered): a consumer with work waiting and none for long is stalled. */
  let lastProgress = performance.now();
  let stalled = false;
  const progressed = () => {
    lastProgress = performance.now();
    stalled = false;
  };
  async function watchStall() {
    let waiting = true;
    try {
      const info = await jsm.consumers.info(o.names.stream, o.durable);
      waiting = info.num_pending + info.num_ack_pending > 0;
    } catch {
      // NATS unreachable: nothing can be stored either, so the clock keeps running
    }
    if (!waiting) progressed();
    const idle = (performance.now() - lastProgress) / 1000;
    o.metrics.setSinceProgress(waiting ? idle : 0);
    if (waiting && idle >= STALL_AFTER_S && !stalled) {
      stalled = true;
      o.metrics.stalls.inc();
      o.logger.warn({ idleSeconds: Math.round(idle) }, 'the consumer has stored nothing while messages wait');
    }
  }
  const stallWatch = setInterval(() => void watchStall(), 2000);
  stallWatch.unref();

  async function deadLetter(
    p: Parsed,
    letter: Omit<DeadLetter, 'subject' | 'stream_seq' | 'deliveries' | 'failed_at' | 'payload'>,
  ) {
    const body: DeadLetter = {
      ...letter,
      subject: p.msg.subject,
      stream_seq: p.msg.seq,
      deliveries: p.msg.info.deliveryCount,
      failed_at: new Date().toISOString(),
      payload: p.msg.string(),
    };
    // Awaiting the JetStream ack of the dead letter before acking the original is what makes
    // "nothing dropped without a trace" hold; the msgID keeps a repeat from doubling it.
    await js.publish(s.dead(typeLabel(p.type)), JSON.stringify(body), {
      msgID: `dead-${o.names.stream}-${p.msg.seq}`,
    });
    o.metrics.dead.inc({ type: typeLabel(p.type), reason: letter.reason });
  }

  async function handleInvalid(invalid: Parsed[]) {
    await Promise.all(
      invalid.map(async (p) => {
        o.metrics.rejected.inc({ type: typeLabel(p.type), source: 'nats', code: p.errors![0]!.code });
        try {
          await deadLetter(p, { reason: 'invalid', message: describeErrors(p.errors!), errors: p.errors });
          p.msg.ack();
        } catch (error) {
          o.logger.warn({ err: error }, 'could not publish a dead letter; the message will be redelivered');
          p.msg.nak(redeliveryDelayMs(p.msg.info.deliveryCount, o.backoffMaxMs));
        }
      }),
    );
  }

  async function handleTransientFailure(valid: Parsed[], error: unknown) {
    await Promise.all(
      valid.map(async (p) => {
        if (p.msg.info.deliveryCount >= o.maxDeliver) {
          try {
            await deadLetter(p, {
              reason: 'undeliverable',
              message: `could not be stored after ${p.msg.info.deliveryCount} deliveries: ${(error as Error).message}`,
            });
            p.msg.ack();
            return;
          } catch {
            // fall through: nak and try again later
          }
        }
        p.msg.nak(redeliveryDelayMs(p.msg.info.deliveryCount, o.backoffMaxMs));
      }),
    );
  }

  /**
   * Messages delivered more often than maxDeliver without an answer (each delivery timed out:
   * the instances holding them crashed or stalled) go to the dead subject instead of round again.
   */
  async function takeExhausted(parsed: Parsed[]): Promise<Parsed[]> {
    const exhausted = parsed.filter((p) => p.msg.info.deliveryCount > o.maxDeliver);
    await Promise.all(
      exhausted.map(async (p) => {
        try {
          await deadLetter(p, {
            reason: 'undeliverable',
            message: `delivered ${p.msg.info.deliveryCount} times without being acknowledged (instances crashed or stalled while holding it)`,
          });
          p.msg.ack();
        } catch {
          p.msg.nak(redeliveryDelayMs(p.msg.info.deliveryCount, o.backoffMaxMs));
        }
      }),
    );
    return parsed.filter((p) => p.msg.info.deliveryCount <= o.maxDeliver);
  }

  /** After the commit: ack what is stored or a duplicate, dead-letter conflicts and refused rows. */
  async function acknowledge(batch: Parsed[], outcome: StoreOutcome) {
    const stored = new Tally();
    const duplicate = new Tally();
    const refused: { p: Parsed; r: Exclude<EventOutcome, { status: 'stored' | 'duplicate' }> }[] = [];
    batch.forEach((p, k) => {
      const r = outcome.results[k]!;
      if (r.status === 'stored' || r.status === 'duplicate') {
        (r.status === 'stored' ? stored : duplicate).add(p.type);
        p.msg.ack();
      } else {
        refused.push({ p, r });
      }
    });
    stored.addTo(o.metrics.stored, 'nats');
    duplicate.addTo(o.metrics.duplicate, 'nats');
    await Promise.all(
      refused.map(async ({ p, r }) => {
        const code = r.status === 'conflict' ? 'conflict' : 'invalid_value';
        o.metrics.rejected.inc({ type: p.type, source: 'nats', code });
        const message = r.status === 'conflict' ? conflictReason(p.event!.id, r.storedAs) : r.reason;
        try {
          await deadLetter(p, {
            reason: r.status === 'conflict' ? 'conflict' : 'invalid',
            message,
            errors: [{ field: r.status === 'conflict' ? '/id' : '', code, reason: message }],
          });
          p.msg.ack();
        } catch (error) {
          o.logger.warn({ err: error }, 'could not publish a dead letter; the message will be redelivered');
          p.msg.nak(redeliveryDelayMs(p.msg.info.deliveryCount, o.backoffMaxMs));
        }
      }),
    );
  }

  async function storeValid(valid: Parsed[]) {
    if (valid.length === 0) return;
    const started = performance.now();
    const outcome = await storeIsolating(
      o.sql,
      o.cache,
      valid.map((p) => p.event!),
      // A message delivered before may have been stored before its ack was lost.
      { mayBeKnown: valid.some((p) => p.msg.info.deliveryCount > 1) },
    );
    o.metrics.appendSeconds.observe({ source: 'nats' }, (performance.now() - started) / 1000);
    if (o.afterCommit) await o.afterCommit(outcome);
    await acknowledge(valid, outcome);
    publishStored(o.nc, o.names, outcome.stored);
  }

  /** Decodes, checks and counts a batch's messages: CPU only, so it runs before the batch waits for a slot. */
  function checkBatch(msgs: JsMsg[]): Parsed[] {
    o.metrics.batchSize.observe({ source: 'nats' }, msgs.length);
    const delivered = msgs.map((m) => parse(m, o.names.prefix));
    const received = new Tally();
    let redelivered = 0;
    for (const p of delivered) {
      received.add(typeLabel(p.type));
      if (p.msg.info.deliveryCount > 1) redelivered++;
    }
    received.addTo(o.metrics.received, 'nats');
    if (redelivered > 0) o.metrics.redelivered.inc(redelivered);
    return delivered;
  }

  async function processBatch(delivered: Parsed[]) {
    const parsed = await takeExhausted(delivered);
    const valid = parsed.filter((p) => p.event);
    const invalid = parsed.filter((p) => !p.event);
    if (invalid.length > 0) await handleInvalid(invalid);
    try {
      await storeValid(valid);
      failures = 0;
      ok = true;
      progressed();
    } catch (error) {
      failures++;
      ok = false;
      o.logger.warn({ err: error, batch: valid.length, failures }, 'storing a batch failed; will retry');
      await handleTransientFailure(valid, error);
      // Do not spin on a dead database: back off before the next batch.
      await pause(Math.min(5000, 100 * 2 ** Math.min(failures, 6)));
    }
  }

  const concurrency = Math.max(1, o.concurrency ?? 2);
  const inflight = new Set<Promise<void>>();
  /**
   * Messages taken from the pull and not yet answered. Marking them in progress keeps the ack
   * wait short (a crashed instance's messages come back within it) without a slow batch, a
   * closed write gate or a busy slot making JetStream redeliver what is still being worked on.
   */
  const held = new Set<JsMsg>();
  const heartbeat = setInterval(
    () => {
      try {
        for (const m of held) m.working();
      } catch {
        // the connection is closing: the messages come back after the ack wait anyway
      }
    },
    Math.max(250, Math.floor(o.ackWaitMs / 3)),
  );
  heartbeat.unref();
  /** Starts a batch, first waiting for a free slot so at most `concurrency` run at once. */
  async function dispatch(batch: JsMsg[]) {
    // Checked while the batches in flight are being stored, so node and PostgreSQL work at once.
    const delivered = checkBatch(batch);
    while (inflight.size >= concurrency) await Promise.race(inflight);
    if (stopped) {
      // Shutting down: hand the batch straight back so another instance can take it now.
      for (const m of batch) {
        m.nak();
        held.delete(m);
      }
      return;
    }
    const run = () => processBatch(delivered);
    const p: Promise<void> = (o.gate ? o.gate.whenOpen(run) : run())
      .catch((error) => {
        // Not acked: handed back at once so they come round again (within max_deliver).
        ok = false;
        o.logger.error({ err: error }, 'processing a batch failed');
        for (const m of batch) m.nak(redeliveryDelayMs(m.info.deliveryCount, o.backoffMaxMs));
      })
      .finally(() => {
        for (const m of batch) held.delete(m);
        inflight.delete(p);
      });
    inflight.add(p);
  }

  async function consumeOnce() {
    const consumer = await js.consumers.get(o.names.stream, o.durable);
    // A pull no larger than the batches in flight (messages waiting in the client's buffer are
    // not marked in progress), and pull requests that expire soon, so a crashed instance leaves
    // little behind and its open requests do not keep taking messages. Short requests also mean
    // missed heartbeats (half the expiry) find a pull lost with a failed stream leader within ~2 s.
    const messages = await consumer.consume({
      max_messages: o.batchSize * concurrency,
      expires: Math.min(2000, Math.max(1000, o.ackWaitMs)),
    });
    current = messages;
    if (stopped) {
      await messages.close();
      return;
    }
    const iter = messages[Symbol.asyncIterator]();
    let next: Promise<IteratorResult<JsMsg>> | undefined;
    const TIMEOUT = Symbol('timeout');
    for (;;) {
      const batch: JsMsg[] = [];
      let deadline = 0;
      while (batch.length < o.batchSize) {
        next ??= iter.next();
        let r: IteratorResult<JsMsg> | typeof TIMEOUT;
        if (batch.length === 0) {
          r = await next;
        } else {
          const wait = deadline - performance.now();
          if (wait <= 0) break;
          let timer: NodeJS.Timeout | undefined;
          r = await Promise.race([
            next,
            new Promise<typeof TIMEOUT>((resolve) => {
              timer = setTimeout(() => resolve(TIMEOUT), wait);
            }),
          ]);
          clearTimeout(timer);
        }
        if (r === TIMEOUT) break;
        next = undefined;
        if (r.done) {
          if (batch.length > 0) await dispatch(batch);
          await Promise.all(inflight);
          return;
        }
        if (batch.length === 0) deadline = performance.now() + o.batchTimeMs;
        batch.push(r.value);
        held.add(r.value);
      }
      await dispatch(batch);
      if (stopped) {
        await Promise.all(inflight);
        return;
      }
    }
  }

  const loop = (async () => {
    while (!stopped) {
      try {
        await consumeOnce();
      } catch (error) {
        if (stopped) break;
        ok = false;
        o.logger.warn({ err: error }, 'consuming failed; retrying');
        await pause(1000);
        try {
          await ensureDurable(jsm, o);
        } catch {
          // NATS still away: the next round retries
        }
      }
    }
  })();

  return {
    async stop() {
      stopped = true;
      signalStop();
      await current?.close().catch(() => {});
      await loop;
      await Promise.all(inflight);
      clearInterval(heartbeat);
      clearInterval(stallWatch);
    },
    healthy: () => ok,
  };
}
