/**
 * Ingest benchmark: end-to-end NATS → PostgreSQL rate against two baselines measured in the
 * same run on the same rows — raw COPY into the same schema, and a raw JetStream consume with
 * no database — plus the HTTP batch path, and a check that the stored id set equals the
 * published one.
 *
 *   npm run bench:ingest                # 500,000 events
 *   npm run bench:ingest -- --quick     # 20,000 events, under a minute
 *   npm run bench:ingest -- --events 100000 --batch 2000
 *
 * The last line printed is one JSON object with the figures.
 */
import { parseArgs } from 'node:util';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createIngestClient } from '@spywatcher/client';
import {
  copyRows,
  createSql,
  ensurePartitions,
  migrate,
  PartitionCache,
  type Sql,
  withDatabase,
} from '@spywatcher/db';
import {
  createPublisher,
  EVENT_COLUMNS,
  EVENT_TYPES,
  type EventType,
  ensureEventStream,
  eventRow,
  eventTable,
  type NatsNames,
  type SpywatcherEvent,
  subjects,
} from '@spywatcher/events';
import { buildApp } from '@spywatcher/ingest/app';
import { startIngestPipeline } from '@spywatcher/ingest/ingest';
import { createIngestMetrics } from '@spywatcher/ingest/metrics';
import { MIGRATIONS_DIR } from '@spywatcher/migrator/migrations';
import { createAuth, createMetricsRegistry } from '@spywatcher/service';
import { createEmptyDatabase } from '@spywatcher/testing';
import { pino } from 'pino';
import { eventStream } from '../../loadgen/generate.ts';
import { type CpuSpent, measureCpu } from '../cpu.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    events: { type: 'string' },
    'http-events': { type: 'string' },
    batch: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '2' },
    seed: { type: 'string', default: '20261126' },
  },
});
const N = Number(values.events ?? (values.quick ? 20_000 : 500_000));
const HTTP_N = Number(values['http-events'] ?? (values.quick ? 5_000 : 50_000));
const BATCH = Number(values.batch);
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const log = (msg: string) => process.stderr.write(`[bench:ingest] ${msg}\n`);
const rate = (n: number, ms: number) => Math.round(n / (ms / 1000));
const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`.toUpperCase();
const names = (label: string): NatsNames => ({
  prefix: `swbench${label}${suffix}`.toLowerCase(),
  stream: `SWBENCH_${label}_${suffix}`,
});

// Events end a little before now so the clock-skew check accepts every one.
const INTERVAL = 20;
const start = new Date(Date.now() - (N + HTTP_N) * INTERVAL * 1.2);
log(`generating ${N} + ${HTTP_N} events`);
const events = [...eventStream(values.seed, N, { start, intervalMs: INTERVAL })];
const httpEvents = [...eventStream(`${values.seed}-http`, HTTP_N, { start, intervalMs: INTERVAL })];

const db = await createEmptyDatabase(withDatabase(DATABASE_URL, 'postgres'), 'sw_bench_ingest');
const sql = createSql({
  url: db.url,
  applicationName: 'spywatcher-bench',
  max: 6,
  statementTimeoutMs: 0,
  idleTimeoutS: 0,
});
/** CPU per event in microseconds, node and PostgreSQL apart. */
const perEvent = (c: CpuSpent, n: number) => ({
  node_us: Math.round((c.node_ms * 1000) / n),
  postgres_us: Math.round((c.postgres_ms * 1000) / n),
});
const nc = await connect({ servers: NATS_URL, name: 'spywatcher-bench' });
const jsm = await jetstreamManager(nc);
const streams: string[] = [];

async function truncateEvents(s: Sql) {
  // The id registry too: the baseline's rows registered their ids like any writer's.
  await s.unsafe(`truncate event_ids, ${EVENT_TYPES.map(eventTable).join(', ')}`);
}

async function publishAll(n: NatsNames, list: SpywatcherEvent[]): Promise<number> {
  await ensureEventStream(jsm, n, { duplicateWindowMs: 120_000, maxAgeMs: 3600_000 });
  streams.push(n.stream);
  const publisher = createPublisher({ nc, names: n, maxInFlight: 1024, validate: false });
  const t0 = performance.now();
  for (const e of list) await publisher.send(e);
  await publisher.flush();
  const s = publisher.stats();
  if (s.failed > 0) throw new Error(`${s.failed} publishes failed`);
  return rate(list.length, performance.now() - t0);
}

async function copyBaseline(): Promise<number> {
  const byType = new Map<EventType, unknown[][]>();
  for (const e of events) {
    const rows = byType.get(e.type) ?? [];
    rows.push(eventRow(e));
    byType.set(e.type, rows);
  }
  const t0 = performance.now();
  // One COPY per table, one after the other, as a bulk loader would.
  for (const [type, rows] of byType) {
    await copyRows(sql, eventTable(type), EVENT_COLUMNS[type], rows as never, 5000);
  }
  return rate(events.length, performance.now() - t0);
}

async function jetstreamBaseline(n: NatsNames): Promise<number> {
  await jsm.consumers.add(n.stream, {
    durable_name: 'raw',
    ack_policy: AckPolicy.Explicit,
    max_ack_pending: 20_000,
  });
  const consumer = await jetstream(nc).consumers.get(n.stream, 'raw');
  const t0 = performance.now();
  const messages = await consumer.consume({ max_messages: BATCH * 2 });
  let seen = 0;
  for await (const m of messages) {
    m.ack();
    if (++seen >= N) break;
  }
  const ms = performance.now() - t0;
  await messages.close();
  return rate(N, ms);
}

async function ingestRun(n: NatsNames): Promise<{ perS: number; storedNotified: number }> {
  const registry = createMetricsRegistry('bench');
  let notified = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const sub = nc.subscribe(subjects(n).allStored, {
    callback: (_err, m) => {
      notified += (m.json() as { count: number }).count;
      if (notified >= N) done();
    },
  });
  const t0 = performance.now();
  const consumer = await startIngestPipeline({
    sql,
    nc,
    names: n,
    cache: new PartitionCache(),
    metrics: createIngestMetrics(registry),
    logger: pino({ level: 'warn' }) as never,
    duplicateWindowMs: 120_000,
    maxAgeMs: 3600_000,
    durable: 'ingest',
    batchSize: BATCH,
    batchTimeMs: 50,
    maxDeliver: 20,
    ackWaitMs: 60_000,
    concurrency: Number(values.concurrency),
  });
  await finished;
  const ms = performance.now() - t0;
  await consumer.stop();
  sub.unsubscribe();
  return { perS: rate(N, ms), storedNotified: notified };
}

async function idCheck(list: SpywatcherEvent[]): Promise<{ lost: number; duplicated: number }> {
  const stored = new Map<string, number>();
  for (const type of EVENT_TYPES) {
    const rows = await sql.unsafe<{ id: string; n: number }[]>(
      `select id::text as id, count(*)::int as n from ${eventTable(type)} group by id`,
    );
    for (const r of rows) stored.set(r.id, (stored.get(r.id) ?? 0) + r.n);
  }
  let lost = 0;
  let duplicated = 0;
  for (const e of list) {
    const c = stored.get(e.id) ?? 0;
    if (c === 0) lost++;
    if (c > 1) duplicated += c - 1;
  }
  return { lost, duplicated };
}

async function httpRun(): Promise<number> {
  const token = 'bench-token-0123456789';
  const app = await buildApp({
    sql,
    nats: nc as NatsConnection,
    auth: createAuth([{ name: 'bench', token, scopes: ['events:write'] }]),
    metrics: createMetricsRegistry('bench-http'),
    names: names('HTTP'),
    maxEvents: 1000,
    maxBytes: 10 * 1024 * 1024,
  });
  const baseUrl = await app.listen({ host: '127.0.0.1', port: 0 });
  const client = createIngestClient({ baseUrl, token });
  const batches: { events: typeof httpEvents; json: string }[] = [];
  for (let i = 0; i < httpEvents.length; i += 1000) {
    const events = httpEvents.slice(i, i + 1000);
    batches.push({ events, json: JSON.stringify(events) });
  }
  const t0 = performance.now();
  let next = 0;
  let stored = 0;
  // Two clients posting batches, like two bots. Bodies are serialised before the clock starts.
  await Promise.all(
    [0, 1].map(async () => {
      while (next < batches.length) {
        const batch = batches[next++]!;
        const { data, error, response } = await client.POST('/v1/events', {
          body: batch.events,
          bodySerializer: () => batch.json,
        });
        if (!data) throw new Error(`HTTP ${response.status}: ${JSON.stringify(error)}`);
        stored += data.stored;
      }
    }),
  );
  const ms = performance.now() - t0;
  await app.close();
  if (stored !== httpEvents.length) throw new Error(`HTTP stored ${stored} of ${httpEvents.length}`);
  return rate(httpEvents.length, ms);
}

let result: Record<string, unknown> | undefined;
try {
  log(`migrating ${db.name}`);
  await migrate({ sql, dir: MIGRATIONS_DIR });
  // Partitions up front, untimed, so neither the baseline nor ingest pays for DDL.
  const cache = new PartitionCache();
  for (const type of EVENT_TYPES) {
    await ensurePartitions(
      sql,
      type,
      [...events, ...httpEvents].filter((e) => e.type === type).map((e) => new Date(e.occurred_at)),
      cache,
    );
  }

  log('baseline: raw COPY');
  const [copyPerS, copyCpu] = await measureCpu(sql, db.name, copyBaseline);
  await truncateEvents(sql);
  await sql`vacuum analyze`.catch(() => {});

  log('baseline: raw JetStream consume (publishing first)');
  const rawNames = names('RAW');
  const publishPerS = await publishAll(rawNames, events);
  const [jetstreamPerS, jetstreamCpu] = await measureCpu(sql, db.name, () => jetstreamBaseline(rawNames));
  await jsm.streams.delete(rawNames.stream);

  log('ingest: NATS → PostgreSQL (publishing the backlog first)');
  const ingestNames = names('ING');
  await publishAll(ingestNames, events);
  const [ingest, ingestCpu] = await measureCpu(sql, db.name, () => ingestRun(ingestNames));
  const check = await idCheck(events);
  await jsm.streams.delete(ingestNames.stream);
  await jsm.streams.delete(`${ingestNames.stream}_DEAD`).catch(() => {});

  log('HTTP batch path');
  const [httpPerS, httpCpu] = await measureCpu(sql, db.name, httpRun);

  const floor = Math.min(copyPerS, jetstreamPerS);
  result = {
    events: N,
    ingest_per_s: ingest.perS,
    copy_per_s: copyPerS,
    jetstream_per_s: jetstreamPerS,
    ratio: Number((ingest.perS / floor).toFixed(3)),
    lost: check.lost,
    duplicated: check.duplicated,
    http_per_s: httpPerS,
    http_events: HTTP_N,
    publish_per_s: publishPerS,
    cpu_us_per_event: {
      copy: perEvent(copyCpu, N),
      jetstream: perEvent(jetstreamCpu, N),
      ingest: perEvent(ingestCpu, N),
      http: perEvent(httpCpu, HTTP_N),
    },
    batch_size: BATCH,
    concurrency: Number(values.concurrency),
  };
} finally {
  for (const s of streams) await jsm.streams.delete(s).catch(() => {});
  await nc.close();
  await sql.end({ timeout: 5 });
  await db.drop();
}
console.log(JSON.stringify(result));
