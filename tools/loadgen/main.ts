/**
 * Publishes synthetic Discord activity to NATS JetStream, like a fleet of bots.
 *
 *   node tools/loadgen/main.ts --count 100000 --rate 2000 --seed 42
 *   node tools/loadgen/main.ts --count 10000 --rate 0            # as fast as possible
 *   node tools/loadgen/main.ts --count 1000 --ndjson > events.ndjson
 *
 * Options: --seed (default 1), --count (default 10000), --rate events/s (0 = as fast as
 * possible, default 0), --nats URL (NATS_URL), --prefix (NATS_SUBJECT_PREFIX), --stream
 * (NATS_STREAM), --ensure-stream (create the stream if missing), --in-flight (default 512),
 * --start ISO time of the first event (default now minus the span), --ndjson (print instead),
 * --retries attempts after the first for one event (default 30). Reconnects to NATS without
 * limit; the last line is a JSON summary, where `unknown` counts events whose ack was lost
 * (they may be stored; publishing them again with the same id is safe).
 */
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createPublisher, DEFAULT_NATS_NAMES, ensureEventStream } from '@spywatcher/events';
import { eventStream } from './generate.ts';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '1' },
    count: { type: 'string', default: '10000' },
    rate: { type: 'string', default: '0' },
    nats: { type: 'string', default: process.env.NATS_URL ?? 'nats://127.0.0.1:4222' },
    prefix: { type: 'string', default: process.env.NATS_SUBJECT_PREFIX ?? DEFAULT_NATS_NAMES.prefix },
    stream: { type: 'string', default: process.env.NATS_STREAM ?? DEFAULT_NATS_NAMES.stream },
    'ensure-stream': { type: 'boolean', default: false },
    'in-flight': { type: 'string', default: '512' },
    'interval-ms': { type: 'string', default: '50' },
    start: { type: 'string' },
    ndjson: { type: 'boolean', default: false },
    retries: { type: 'string', default: '30' },
  },
});

const count = Number(values.count);
const rate = Number(values.rate);
const intervalMs = Number(values['interval-ms']);
// Events end "now" by default so ingest's clock-skew check accepts all of them.
const start = values.start ? new Date(values.start) : new Date(Date.now() - count * intervalMs);
const events = eventStream(values.seed, count, { start, intervalMs });

if (values.ndjson) {
  await writeNdjson(events);
} else {
  await publishAll(events);
}

/**
 * Prints one event per line, waiting whenever stdout's buffer is full: a pipe drains slower
 * than we write, and exiting with lines still buffered would cut the output short.
 */
async function writeNdjson(list: Iterable<unknown>): Promise<void> {
  let closed = false;
  process.stdout.on('error', () => {
    closed = true; // the reader went away (e.g. `| head`): stop quietly
  });
  for (const e of list) {
    if (closed) return;
    if (!process.stdout.write(`${JSON.stringify(e)}\n`)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          process.stdout.off('drain', done);
          process.stdout.off('close', done);
          resolve();
        };
        process.stdout.once('drain', done);
        process.stdout.once('close', done);
      });
    }
  }
}

async function publishAll(list: Iterable<Parameters<ReturnType<typeof createPublisher>['send']>[0]>) {
  // Unlimited reconnects: a NATS outage pauses the run (publishes wait and are retried) instead of
  // ending it.
  const nc = await connect({
    servers: values.nats.split(','),
    name: 'spywatcher-loadgen',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
  });
  const names = { prefix: values.prefix, stream: values.stream };
  if (values['ensure-stream']) await ensureEventStream(await jetstreamManager(nc), names);
  let failures = 0;
  const publisher = createPublisher({
    nc,
    names,
    maxInFlight: Number(values['in-flight']),
    // Enough attempts (capped backoff aside, ~minutes) to ride out a NATS restart.
    retries: Number(values.retries),
    onError: (f) => {
      failures++;
      if (failures <= 10) process.stderr.write(`${f.outcome} ${f.id}: ${f.error.message}\n`);
    },
  });

  const started = performance.now();
  let sent = 0;
  for (const event of list) {
    if (rate > 0) {
      const due = started + (sent / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    }
    await publisher.send(event);
    sent++;
    if (sent % 50_000 === 0) process.stderr.write(`${sent} sent\n`);
  }
  await publisher.flush();
  const seconds = (performance.now() - started) / 1000;
  const stats = publisher.stats();
  let drainError: string | undefined;
  try {
    await nc.drain();
  } catch (error) {
    // The summary matters more than a clean goodbye: every outcome above is already known.
    drainError = (error as Error).message;
    await nc.close().catch(() => {});
  }
  console.log(
    JSON.stringify({
      events: sent,
      seconds: Number(seconds.toFixed(2)),
      per_s: Math.round(sent / seconds),
      duplicates: stats.duplicates,
      retried: stats.retried,
      failed: stats.failed,
      unknown: stats.unknown,
      ...(drainError ? { drain_error: drainError } : {}),
    }),
  );
  process.exitCode = stats.failed + stats.unknown > 0 ? 1 : 0;
}
