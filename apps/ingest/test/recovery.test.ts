import { jetstreamManager } from '@nats-io/jetstream';
import { createSql } from '@spywatcher/db';
import { createEvent, createPublisher, type SpywatcherEvent } from '@spywatcher/events';
import {
  adminDatabaseUrl,
  createTestDatabase,
  recordUncaught,
  type TestDatabase,
  UNREACHABLE_DATABASE_URL,
  type UncaughtRecorder,
} from '@spywatcher/testing';
import { type NatsServer, startNatsServer } from '@spywatcher/testing/nats-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleEvents } from '../../../libs/events/test/fixtures.ts';
import type { DeadLetter } from '../src/consumer.ts';
import { createIngest, type Ingest, storedIdCounts, waitFor } from './harness.ts';

const many = (n: number): SpywatcherEvent[] =>
  Array.from({ length: n }, (_, i) => {
    const s = sampleEvents();
    const all = Object.values(s) as SpywatcherEvent[];
    return { ...all[i % all.length]!, id: createEvent('join', s.join.data).id } as SpywatcherEvent;
  });

async function expectStoredOnce(ingest: Ingest, events: SpywatcherEvent[]) {
  const counts = await waitFor(
    `${events.length} events stored`,
    async () => {
      const c = await storedIdCounts(ingest.sql);
      return events.every((e) => c.has(e.id)) ? c : undefined;
    },
    45_000,
  );
  const doubled = events.filter((e) => counts.get(e.id) !== 1);
  expect(doubled).toEqual([]);
  expect(counts.size).toBe(new Set(events.map((e) => e.id)).size);
}

const ready = async (ingest: Ingest) => (await ingest.app.inject({ url: '/ready' })).statusCode;

describe('PostgreSQL goes away during ingest', () => {
  let db: TestDatabase;
  let ingest: Ingest;
  beforeAll(async () => {
    db = await createTestDatabase();
    ingest = await createIngest(db.url);
    await ingest.startConsumer({ maxDeliver: 1000 });
  });
  afterAll(async () => {
    await ingest?.close();
    await db?.drop();
  });

  it('reports not ready, keeps the messages, and stores each once when it is back', async () => {
    const admin = createSql({ url: adminDatabaseUrl(), applicationName: 'spywatcher-tests', max: 1 });
    try {
      const publisher = createPublisher({ nc: ingest.nc, names: ingest.names });
      const before = many(100);
      await publisher.publishAll(before);
      await expectStoredOnce(ingest, before);

      await admin.unsafe(`alter database "${db.name}" allow_connections false`);
      await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${db.name}`;
      await waitFor('not ready', async () => ((await ready(ingest)) === 503 ? true : undefined));
      const during = many(300);
      const sent = await publisher.publishAll(during);
      expect(sent.failed).toEqual([]);
      // Let the consumer fail on them (and nak) a few times before the database returns.
      await new Promise((r) => setTimeout(r, 2500));
      await admin.unsafe(`alter database "${db.name}" allow_connections true`);

      await expectStoredOnce(ingest, [...before, ...during]);
      await waitFor('ready again', async () => ((await ready(ingest)) === 200 ? true : undefined));
    } finally {
      await admin.unsafe(`alter database "${db.name}" allow_connections true`).catch(() => {});
      await admin.end();
    }
  });
});

describe("PostgreSQL ends ingest's connections in the middle of batches", () => {
  let db: TestDatabase;
  let ingest: Ingest;
  let watch: UncaughtRecorder | undefined;
  beforeAll(async () => {
    watch = recordUncaught();
    db = await createTestDatabase();
    ingest = await createIngest(db.url);
    await ingest.startConsumer({ maxDeliver: 1000, batchSize: 100 });
  });
  afterAll(async () => {
    watch?.stop();
    await ingest?.close();
    await db?.drop();
  });

  it('keeps running, retries the batches, and stores every event once', async () => {
    const admin = createSql({ url: adminDatabaseUrl(), applicationName: 'spywatcher-tests', max: 1 });
    const publisher = createPublisher({ nc: ingest.nc, names: ingest.names });
    const sent: SpywatcherEvent[] = [];
    let publishing = true;
    const steady = (async () => {
      while (publishing) {
        const batch = many(40);
        const r = await publisher.publishAll(batch);
        expect(r.failed).toEqual([]);
        sent.push(...batch);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    let terminated = 0;
    try {
      for (let round = 0; round < 8; round++) {
        // Only this test's own database: mid-statement (a COPY, an insert) or mid-transaction when
        // one is under way, otherwise whatever is open.
        const busy = await admin<{ pid: number }[]>`
          select pid from pg_stat_activity
           where datname = ${db.name} and application_name = 'spywatcher-ingest-test'
           order by (state <> 'idle') desc`;
        for (const { pid } of busy.slice(0, 2)) {
          await admin`select pg_terminate_backend(${pid}) from pg_stat_activity where pid = ${pid} and datname = ${db.name}`;
          terminated++;
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    } finally {
      publishing = false;
      await steady;
      await admin.end();
    }
    expect(terminated).toBeGreaterThan(0);
    await expectStoredOnce(ingest, sent);
    await waitFor('ready again', async () => ((await ready(ingest)) === 200 ? true : undefined));
    expect(watch!.errors).toEqual([]);
  });
});

describe('NATS goes away during ingest', () => {
  let db: TestDatabase;
  let ingest: Ingest;
  let nats: NatsServer;
  beforeAll(async () => {
    db = await createTestDatabase();
    nats = await startNatsServer();
    ingest = await createIngest(db.url, { natsUrl: nats.url });
    await ingest.startConsumer();
  });
  afterAll(async () => {
    await nats?.start().catch(() => {});
    await ingest?.close();
    await nats?.stop();
    await db?.drop();
  });

  it('reconnects, resumes consuming, and loses or doubles nothing', async () => {
    const publisher = createPublisher({ nc: ingest.nc, names: ingest.names, retries: 50, backoffMs: 100 });
    const before = many(100);
    await publisher.publishAll(before);
    await expectStoredOnce(ingest, before);

    await nats.kill();
    await waitFor('not ready', async () => ((await ready(ingest)) === 503 ? true : undefined));
    // Publish while the server is down: the client buffers and the publisher retries.
    const during = many(200);
    const sending = publisher.publishAll(during);
    await new Promise((r) => setTimeout(r, 1000));
    await nats.start();
    const sent = await sending;
    expect(sent.failed).toEqual([]);
    const after = many(100);
    await publisher.publishAll(after);

    await expectStoredOnce(ingest, [...before, ...during, ...after]);
    await waitFor('ready again', async () => ((await ready(ingest)) === 200 ? true : undefined));
  });
});

describe('a message that keeps failing to store', () => {
  let ingest: Ingest;
  beforeAll(async () => {
    ingest = await createIngest(UNREACHABLE_DATABASE_URL);
    await ingest.startConsumer({ maxDeliver: 2 });
  });
  afterAll(async () => {
    await ingest?.close();
  });

  it('goes to the dead subject with the reason after the bounded number of deliveries', async () => {
    const publisher = createPublisher({ nc: ingest.nc, names: ingest.names });
    const [event] = many(1);
    await publisher.publish(event!);
    const jsm = await jetstreamManager(ingest.nc);
    const dead = `${ingest.names.stream}_DEAD`;
    await waitFor('dead letter', async () =>
      (await jsm.streams.info(dead)).state.messages === 1 ? true : undefined,
    );
    const letter = (await jsm.streams.getMessage(dead, { seq: 1 }))!.json<DeadLetter>();
    expect(letter).toMatchObject({ reason: 'undeliverable', deliveries: 2, payload: JSON.stringify(event) });
    expect(letter.message).toMatch(/after 2 deliveries/);
    await waitFor('acked', async () => {
      const info = await jsm.consumers.info(ingest.names.stream, 'ingest');
      return info.num_ack_pending === 0 && info.num_pending === 0 ? true : undefined;
    });
  });
});
