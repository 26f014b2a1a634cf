import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createEvent, createPublisher, type SpywatcherEvent, subjects } from '@spywatcher/events';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleEvents } from '../../../libs/events/test/fixtures.ts';
import type { DeadLetter } from '../src/consumer.ts';
import { createIngest, type Ingest, storedIdCounts, WRITER, waitFor } from './harness.ts';

let db: TestDatabase;
let ingest: Ingest;
let crashOnce = false;
let crashes = 0;
const notifications: { subject: string; body: Record<string, unknown> }[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  ingest = await createIngest(db.url);
  await ingest.startConsumer({
    afterCommit: () => {
      if (crashOnce) {
        crashOnce = false;
        crashes++;
        throw new Error('simulated crash between commit and ack');
      }
    },
  });
  const sub = ingest.nc.subscribe(subjects(ingest.names).allStored);
  void (async () => {
    for await (const m of sub) notifications.push({ subject: m.subject, body: m.json() });
  })();
});
afterAll(async () => {
  await ingest?.close();
  await db?.drop();
});

const many = (n: number): SpywatcherEvent[] =>
  Array.from({ length: n }, (_, i) => {
    const s = sampleEvents();
    const all = Object.values(s) as SpywatcherEvent[];
    return { ...all[i % all.length]!, id: createEvent('join', s.join.data).id } as SpywatcherEvent;
  });

async function waitStored(ids: string[]) {
  return waitFor(`${ids.length} events stored`, async () => {
    const counts = await storedIdCounts(ingest.sql);
    return ids.every((id) => counts.has(id)) ? counts : undefined;
  });
}

describe('NATS ingest', () => {
  it('stores what a bot publishes, once each, and announces it on stored.<type>', async () => {
    const publisher = createPublisher({ nc: ingest.nc, names: ingest.names, maxInFlight: 64 });
    const events = many(700);
    const result = await publisher.publishAll(events);
    expect(result).toMatchObject({ published: 700, duplicates: 0, failed: [] });
    const counts = await waitStored(events.map((e) => e.id));
    for (const e of events) expect(counts.get(e.id)).toBe(1);
    await waitFor('notifications', async () =>
      notifications.reduce((n, x) => n + (x.body.count as number), 0) >= 700 ? true : undefined,
    );
    const message = notifications.find((n) => n.subject === subjects(ingest.names).stored('message'))!;
    expect(message.body).toMatchObject({ type: 'message' });
    expect(message.body.ids).toHaveLength(message.body.count as number);
    expect(typeof message.body.maxPosition).toBe('string');
    const [row] = await ingest.sql.unsafe<{ max: string }[]>(
      `select max(position)::text as max from message_events where id = any($1::uuid[])`,
      [message.body.ids as string[]],
    );
    expect(message.body.maxPosition).toBe(row!.max);
  });

  it('stores an event once when the publisher sends it again, even past the dedupe window', async () => {
    const publisher = createPublisher({ nc: ingest.nc, names: ingest.names });
    const { message } = sampleEvents();
    const first = await publisher.publish(message);
    const retry = await publisher.publish(message);
    expect(first.duplicate).toBe(false);
    expect(retry.duplicate).toBe(true);
    // A republish with a fresh Nats-Msg-Id (as after the window) reaches ingest: the key stops it.
    const js = jetstream(ingest.nc);
    await js.publish(subjects(ingest.names).event('message'), JSON.stringify(message), { msgID: 'other' });
    await waitStored([message.id]);
    await waitFor('duplicate counted', async () => {
      const text = await (
        await ingest.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${WRITER}` } })
      ).body;
      return /ingest_events_duplicate_total\{type="message",source="nats".*\} [1-9]/.test(text) || undefined;
    });
    expect((await storedIdCounts(ingest.sql)).get(message.id)).toBe(1);
  });

  it('publisher retries after lost acks do not duplicate', async () => {
    // An ack timeout far below the server's round trip makes attempts give up while the
    // message is stored, so the publisher retries the same id.
    const publisher = createPublisher({
      nc: ingest.nc,
      names: ingest.names,
      ackTimeoutMs: 1,
      retries: 30,
      backoffMs: 1,
      maxInFlight: 200,
    });
    const events = many(300);
    const result = await publisher.publishAll(events);
    expect(result.failed).toEqual([]);
    const counts = await waitStored(events.map((e) => e.id));
    for (const e of events) expect(counts.get(e.id)).toBe(1);
    const info = await (await jetstreamManager(ingest.nc)).streams.info(ingest.names.stream);
    expect(info.state.messages).toBeGreaterThan(0);
  });

  it('a crash after commit and before ack: redelivered, stored once', async () => {
    crashOnce = true;
    const publisher = createPublisher({ nc: ingest.nc, names: ingest.names });
    const events = many(50);
    await publisher.publishAll(events);
    const counts = await waitStored(events.map((e) => e.id));
    expect(crashes).toBe(1);
    // The redelivery (after ack_wait) finds them stored and acks them as duplicates.
    await waitFor('redelivered and acked', async () => {
      const info = await (await jetstreamManager(ingest.nc)).consumers.info(ingest.names.stream, 'ingest');
      return info.num_ack_pending === 0 && info.num_pending === 0 ? true : undefined;
    });
    const after = await storedIdCounts(ingest.sql);
    for (const e of events) expect(after.get(e.id)).toBe(1);
    expect(counts.size).toBe(after.size);
  });

  it('dead-letters only the row PostgreSQL refuses and stores the rest of its batch', async () => {
    await ingest.sql.unsafe(
      'alter table join_events add constraint test_age check (account_age_days < 100000)',
    );
    try {
      const { join } = sampleEvents();
      const refused = { ...join, data: { ...join.data, account_age_days: 200_000 } };
      const others = many(20);
      const publisher = createPublisher({ nc: ingest.nc, names: ingest.names });
      await publisher.publishAll([...others.slice(0, 10), refused, ...others.slice(10)]);
      await waitStored(others.map((e) => e.id));
      const jsm = await jetstreamManager(ingest.nc);
      const dead = `${ingest.names.stream}_DEAD`;
      const letter = await waitFor('dead letter', async () => {
        const info = await jsm.streams.info(dead).catch(() => undefined);
        if (!info || info.state.messages === 0) return undefined;
        const m = await jsm.streams.getMessage(dead, { last_by_subj: subjects(ingest.names).dead('join') });
        return m?.json<DeadLetter>();
      });
      expect(letter).toMatchObject({ reason: 'invalid', payload: JSON.stringify(refused) });
      expect(letter.message).toMatch(/refused by PostgreSQL/);
      expect((await storedIdCounts(ingest.sql)).has(refused.id)).toBe(false);
    } finally {
      await ingest.sql.unsafe('alter table join_events drop constraint test_age');
    }
  });

  it('sends invalid events to the dead subject with the payload and reason, and acks them', async () => {
    const jsm = await jetstreamManager(ingest.nc);
    const js = jetstream(ingest.nc);
    const s = subjects(ingest.names);
    const { typing } = sampleEvents();
    const bad = { ...typing, data: { ...typing.data, channel_id: 'general' } };
    const deadStream = `${ingest.names.stream}_DEAD`;
    const earlier = (await jsm.streams.info(deadStream)).state.messages;
    await js.publish(s.event('typing'), JSON.stringify(bad), { msgID: bad.id });
    await js.publish(s.event('message'), '{not json', { msgID: 'garbage-1' });
    await js.publish(s.event('join'), JSON.stringify(typing), { msgID: 'wrong-subject' });
    const dead = await waitFor('three dead letters', async () => {
      const info = await jsm.streams.info(deadStream);
      return info.state.messages >= earlier + 3 ? info : undefined;
    });
    expect(dead.state.messages).toBe(earlier + 3);
    const letters: DeadLetter[] = [];
    for (let seq = earlier + 1; seq <= earlier + 3; seq++) {
      const m = await jsm.streams.getMessage(deadStream, { seq });
      letters.push(m!.json<DeadLetter>());
    }
    const typingLetter = letters.find((l) => l.subject === s.event('typing'))!;
    expect(typingLetter).toMatchObject({ reason: 'invalid', payload: JSON.stringify(bad) });
    expect(typingLetter.errors).toContainEqual(expect.objectContaining({ field: '/data/channel_id' }));
    expect(letters.find((l) => l.subject === s.event('message'))).toMatchObject({ payload: '{not json' });
    expect(letters.find((l) => l.subject === s.event('join'))!.message).toMatch(/subject/);
    const counts = await storedIdCounts(ingest.sql);
    expect(counts.has(bad.id)).toBe(false);
    expect(counts.has(typing.id)).toBe(false);
    await waitFor('acked', async () => {
      const info = await jsm.consumers.info(ingest.names.stream, 'ingest');
      return info.num_ack_pending === 0 && info.num_pending === 0 ? true : undefined;
    });
    // The counter moves once our publish of the dead letter is acked, a moment after the stream has it.
    const metrics = await waitFor('dead letters counted', async () => {
      const text = (
        await ingest.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${WRITER}` } })
      ).body;
      return /ingest_events_dead_total\{type="typing",reason="invalid".*\} 2/.test(text) ? text : undefined;
    });
    expect(metrics).toMatch(/ingest_consumer_pending/);
  });
});
