import { createEvent, createPublisher, type SpywatcherEvent } from '@spywatcher/events';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { type NatsServer, startNatsServer } from '@spywatcher/testing/nats-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIngest, type Ingest, storedIdCounts, waitFor } from './harness.ts';

const joins = (n: number, from: number): SpywatcherEvent[] =>
  Array.from(
    { length: n },
    (_, i) =>
      createEvent('join', {
        user_id: String(700_000 + from + i),
        username: `u${from + i}`,
        guild_id: '42',
        account_age_days: 3,
      }) as SpywatcherEvent,
  );

const total = async (counter: Ingest['metrics']['stored']) =>
  (await counter.get()).values.reduce((sum, v) => sum + v.value, 0);

describe('two ingest instances on one durable consumer', () => {
  let db: TestDatabase;
  let nats: NatsServer;
  let first: Ingest;
  let second: Ingest;
  beforeAll(async () => {
    db = await createTestDatabase();
    nats = await startNatsServer();
    first = await createIngest(db.url, { natsUrl: nats.url });
    second = await createIngest(db.url, { natsUrl: nats.url, names: first.names });
    // A long ack wait: a redelivery here would only mean a slow machine, not a shared consumer.
    await first.startConsumer({ ackWaitMs: 60_000, batchSize: 100 });
    await second.startConsumer({ ackWaitMs: 60_000, batchSize: 100 });
  });
  afterAll(async () => {
    await second?.close();
    await first?.close();
    await nats?.stop();
    await db?.drop();
  });

  it('share the events: each stores some, together every one exactly once', async () => {
    const publisher = createPublisher({ nc: first.nc, names: first.names });
    const events: SpywatcherEvent[] = [];
    for (let chunk = 0; chunk < 10; chunk++) {
      const batch = joins(200, chunk * 200);
      expect((await publisher.publishAll(batch)).failed).toEqual([]);
      events.push(...batch);
    }
    const counts = await waitFor(
      'every event stored',
      async () => {
        const c = await storedIdCounts(first.sql);
        return events.every((e) => c.has(e.id)) ? c : undefined;
      },
      60_000,
    );
    expect(events.filter((e) => counts.get(e.id) !== 1)).toEqual([]);
    expect(counts.size).toBe(events.length);

    const storedBy = [await total(first.metrics.stored), await total(second.metrics.stored)];
    expect(storedBy[0]! + storedBy[1]!).toBe(events.length);
    expect(storedBy[0]).toBeGreaterThan(0);
    expect(storedBy[1]).toBeGreaterThan(0);
  });
});
