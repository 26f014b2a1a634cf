import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createSql, PartitionCache, type Sql } from '@spywatcher/db';
import type { NatsNames } from '@spywatcher/events';
import { EVENT_TYPES, eventTable } from '@spywatcher/events';
import { createAuth, createMetricsRegistry, type ServiceInstance } from '@spywatcher/service';
import { testNatsNames, testNatsUrl } from '@spywatcher/testing';
import { pino } from 'pino';
import { buildApp } from '../src/app.ts';
import type { ConsumerOptions, IngestConsumer } from '../src/consumer.ts';
import { startIngestPipeline } from '../src/ingest.ts';
import { createIngestMetrics, type IngestMetrics } from '../src/metrics.ts';
import type { WriteGate } from '../src/pause.ts';

export const WRITER = 'writer-token-0123456789';
export const READER = 'reader-token-0123456789';
export const auth = createAuth([
  { name: 'writer', token: WRITER, scopes: ['events:write', 'events:read', 'metrics:read'] },
  { name: 'reader', token: READER, scopes: ['events:read'] },
]);
export const quietLogger = pino({
  level: process.env.TEST_LOG ?? 'silent',
}) as unknown as ConsumerOptions['logger'];

export interface Ingest {
  sql: Sql;
  nc: NatsConnection;
  names: NatsNames;
  app: ServiceInstance;
  metrics: IngestMetrics;
  cache: PartitionCache;
  consumer?: IngestConsumer;
  startConsumer(overrides?: Partial<ConsumerOptions>): Promise<IngestConsumer>;
  close(): Promise<void>;
}

/** An ingest instance (HTTP app + optional consumer) on a test database and test NATS names. */
export async function createIngest(
  databaseUrl: string,
  opts: {
    natsUrl?: string;
    names?: NatsNames;
    maxEvents?: number;
    maxBytes?: number;
    gate?: WriteGate;
  } = {},
): Promise<Ingest> {
  const sql = createSql({
    url: databaseUrl,
    applicationName: 'spywatcher-ingest-test',
    max: 4,
    connectTimeoutS: 2,
  });
  const nc = await connect({
    servers: opts.natsUrl ?? testNatsUrl(),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 200,
  });
  const names = opts.names ?? testNatsNames('ing');
  const registry = createMetricsRegistry('ingest');
  const metrics = createIngestMetrics(registry);
  const cache = new PartitionCache();
  const app = await buildApp({
    sql,
    nats: nc,
    auth,
    metrics: registry,
    names,
    cache,
    ingestMetrics: metrics,
    maxEvents: opts.maxEvents,
    maxBytes: opts.maxBytes,
    gate: opts.gate,
  });
  const consumers: IngestConsumer[] = [];
  const ingest: Ingest = {
    sql,
    nc,
    names,
    app,
    metrics,
    cache,
    async startConsumer(overrides = {}) {
      const c = await startIngestPipeline({
        sql,
        nc,
        names,
        cache,
        metrics,
        logger: quietLogger,
        duplicateWindowMs: 120_000,
        maxAgeMs: 3600_000,
        durable: 'ingest',
        batchSize: 200,
        batchTimeMs: 20,
        maxDeliver: 100,
        ackWaitMs: 2000,
        gate: opts.gate,
        ...overrides,
      });
      consumers.push(c);
      ingest.consumer = c;
      return c;
    },
    async close() {
      for (const c of consumers) await c.stop();
      await app.close();
      try {
        const { jetstreamManager } = await import('@nats-io/jetstream');
        const jsm = await jetstreamManager(nc);
        await jsm.streams.delete(names.stream).catch(() => {});
        await jsm.streams.delete(`${names.stream}_DEAD`).catch(() => {});
      } catch {
        // server gone (reconnect tests clean up their own)
      }
      await nc.close();
      await sql.end({ timeout: 5 });
    },
  };
  return ingest;
}

/** Every stored event id, across all tables, with how many times it is stored. */
export async function storedIdCounts(sql: Sql): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const type of EVENT_TYPES) {
    const rows = await sql.unsafe<{ id: string; n: number }[]>(
      `select id::text as id, count(*)::int as n from ${eventTable(type)} group by id`,
    );
    for (const r of rows) out.set(r.id, (out.get(r.id) ?? 0) + r.n);
  }
  return out;
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch {
      // not yet
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
