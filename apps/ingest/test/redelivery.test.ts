import { AckPolicy, DeliverPolicy, type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  createEvent,
  createPublisher,
  ensureDeadLetterStream,
  ensureEventStream,
  type SpywatcherEvent,
  subjects,
} from '@spywatcher/events';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleEvents } from '../../../libs/events/test/fixtures.ts';
import type { DeadLetter } from '../src/consumer.ts';
import { createIngest, type Ingest, storedIdCounts, waitFor } from './harness.ts';

let db: TestDatabase;
let ingest: Ingest;

beforeAll(async () => {
  db = await createTestDatabase();
  ingest = await createIngest(db.url);
});
afterAll(async () => {
  await ingest?.close();
  await db?.drop();
});

const joins = (n: number): SpywatcherEvent[] =>
  Array.from({ length: n }, () => createEvent('join', sampleEvents().join.data) as SpywatcherEvent);

/** Takes up to `n` messages from the durable consumer and never answers them: a crashed instance. */
async function takeAndDrop(n: number): Promise<JsMsg[]> {
  const consumer = await jetstream(ingest.nc).consumers.get(ingest.names.stream, 'ingest');
  const taken: JsMsg[] = [];
  while (taken.length < n) {
    const batch = await consumer.fetch({ max_messages: n - taken.length, expires: 1000 });
    for await (const m of batch) taken.push(m);
  }
  return taken;
}

async function metric(name: string): Promise<number> {
  const text = (await ingest.app.inject({ url: '/metrics' })).body;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(' ').pop()) : Number.NaN;
}

describe('bounded redelivery', () => {
  it('brings an existing consumer to the settings on start (max_deliver, ack wait, backoff)', async () => {
    const jsm = await jetstreamManager(ingest.nc);
    await ensureEventStream(jsm, ingest.names, { duplicateWindowMs: 120_000, maxAgeMs: 3600_000 });
    await ensureDeadLetterStream(jsm, ingest.names);
    // as an older ingest left it: unlimited deliveries, 30 s ack wait
    await jsm.consumers.add(ingest.names.stream, {
      durable_name: 'ingest',
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: subjects(ingest.names).allEvents,
      ack_wait: 30_000_000_000,
      max_deliver: -1,
    });
    const before = joins(3);
    await createPublisher({ nc: ingest.nc, names: ingest.names }).publishAll(before);
    // two deliveries answered by nobody, with the old 30 s ack wait shortened by the update below
    const dropped = await takeAndDrop(3);
    expect(dropped).toHaveLength(3);

    await ingest.startConsumer({ maxDeliver: 3, ackWaitMs: 1000, backoffMaxMs: 4000 });
    const info = await jsm.consumers.info(ingest.names.stream, 'ingest');
    expect(info.config.max_deliver).toBe(4);
    expect(info.config.ack_wait).toBe(1_000_000_000);
    expect(info.config.backoff).toEqual([1_000_000_000, 2_000_000_000, 4_000_000_000]);

    // the dropped messages come back and are stored once each, counted as redeliveries
    await waitFor('the dropped messages stored', async () => {
      const counts = await storedIdCounts(ingest.sql);
      return before.every((e) => counts.get(e.id) === 1) ? true : undefined;
    });
    expect(await metric('ingest_consumer_redeliveries_total')).toBeGreaterThanOrEqual(3);
  });

  it('dead-letters a message delivered more than max_deliver times without an answer', async () => {
    await ingest.consumer!.stop();
    const [event] = joins(1);
    await createPublisher({ nc: ingest.nc, names: ingest.names }).publish(event!);
    // three deliveries that time out (instances that crash while holding it)
    for (let delivery = 1; delivery <= 3; delivery++) {
      const [m] = await takeAndDrop(1);
      expect(m!.info.deliveryCount).toBe(delivery);
    }
    await ingest.startConsumer({ maxDeliver: 3, ackWaitMs: 1000, backoffMaxMs: 4000 });
    const jsm = await jetstreamManager(ingest.nc);
    const dead = `${ingest.names.stream}_DEAD`;
    const letter = await waitFor('the dead letter', async () => {
      const stored = await jsm.streams.getMessage(dead, { last_by_subj: `${ingest.names.prefix}.dead.join` });
      const body = stored?.json<DeadLetter>();
      return body?.payload === JSON.stringify(event) ? body : undefined;
    });
    expect(letter).toMatchObject({ reason: 'undeliverable', deliveries: 4 });
    expect(letter.message).toMatch(/delivered 4 times without being acknowledged/);
    const counts = await storedIdCounts(ingest.sql);
    expect(counts.has(event!.id)).toBe(false);
  });

  it('reports messages held by an instance as ack pending', async () => {
    await ingest.consumer!.stop();
    await createPublisher({ nc: ingest.nc, names: ingest.names }).publishAll(joins(4));
    const held = await takeAndDrop(4);
    expect(await metric('ingest_consumer_ack_pending')).toBe(4);
    for (const m of held) m.nak();
  });
});
