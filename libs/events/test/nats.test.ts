import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { testNatsNames, testNatsUrl } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPublisher, PublishError } from '../src/publisher.ts';
import { deadLetterStreamName, ensureDeadLetterStream, ensureEventStream } from '../src/stream.ts';
import { sampleEvents } from './fixtures.ts';

let nc: NatsConnection;
const names = testNatsNames('ev');

beforeAll(async () => {
  nc = await connect({ servers: testNatsUrl() });
});
afterAll(async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(names.stream).catch(() => {});
  await jsm.streams.delete(deadLetterStreamName(names)).catch(() => {});
  await nc.close();
});

describe('JetStream helpers', () => {
  it('creates the stream, then updates it in place', async () => {
    const jsm = await jetstreamManager(nc);
    const created = await ensureEventStream(jsm, names, { duplicateWindowMs: 60_000, maxAgeMs: 3_600_000 });
    expect(created.config).toMatchObject({
      name: names.stream,
      subjects: [`${names.prefix}.events.>`],
      storage: 'file',
      duplicate_window: 60_000 * 1e6,
      max_age: 3_600_000 * 1e6,
    });
    const updated = await ensureEventStream(jsm, names, { duplicateWindowMs: 30_000, maxAgeMs: 7_200_000 });
    expect(updated.config).toMatchObject({ duplicate_window: 30_000 * 1e6, max_age: 7_200_000 * 1e6 });
    const dead = await ensureDeadLetterStream(jsm, names);
    expect(dead.config.subjects).toEqual([`${names.prefix}.dead.>`]);
  });

  it('publishes with the event id as Nats-Msg-Id and refuses invalid events without sending', async () => {
    const failures: string[] = [];
    const publisher = createPublisher({ nc, names, onError: (f) => failures.push(f.id) });
    const { message, typing } = sampleEvents();
    const first = await publisher.publish(message);
    const again = await publisher.publish(message);
    expect(again).toMatchObject({ duplicate: true, seq: first.seq });
    const bad = { ...typing, data: { ...typing.data, guild_id: 'x' } };
    await expect(publisher.publish(bad)).rejects.toBeInstanceOf(PublishError);
    await publisher.send(bad);
    expect(failures).toEqual([typing.id]);
    const info = await (await jetstreamManager(nc)).streams.info(names.stream);
    expect(info.state.messages).toBe(1);
    expect(publisher.stats()).toMatchObject({ published: 2, duplicates: 1, failed: 2, inFlight: 0 });
  });

  it('reports a failure after its retries when no stream takes the subject', async () => {
    const publisher = createPublisher({
      nc,
      names: { prefix: `${names.prefix}nostream`, stream: 'NONE' },
      retries: 2,
      backoffMs: 1,
      ackTimeoutMs: 500,
    });
    const error = await publisher.publish(sampleEvents().join).catch((e) => e);
    expect(error).toBeInstanceOf(PublishError);
    expect((error as PublishError).failure).toMatchObject({ attempts: 3, outcome: 'failed' });
    expect(publisher.stats()).toMatchObject({ retried: 2, failed: 1, unknown: 0 });
  });

  it('reports outcome unknown, not failed, when acks are lost, every attempt with the same message id', async () => {
    // Something receives the publish and never answers: to the publisher, exactly a lost ack.
    const prefix = `${names.prefix}silent`;
    const seen: (string | undefined)[] = [];
    const sub = nc.subscribe(`${prefix}.events.>`, {
      callback: (_e, m) => {
        seen.push(m.headers?.get('Nats-Msg-Id'));
      },
    });
    try {
      const onError: string[] = [];
      const publisher = createPublisher({
        nc,
        names: { prefix, stream: 'NONE' },
        retries: 2,
        backoffMs: 1,
        ackTimeoutMs: 200,
        onError: (f) => onError.push(f.outcome),
      });
      const { join, typing } = sampleEvents();
      const error = (await publisher.publish(join).catch((e) => e)) as PublishError;
      expect(error).toBeInstanceOf(PublishError);
      expect(error.failure).toMatchObject({ id: join.id, attempts: 3, outcome: 'unknown' });
      expect(error.message).toMatch(/outcome unknown.*safe to publish it again with the same id/);
      expect(seen).toEqual([join.id, join.id, join.id]);
      await publisher.send(typing);
      await publisher.flush();
      expect(onError).toEqual(['unknown']);
      expect(publisher.stats()).toMatchObject({ failed: 0, unknown: 2, published: 0 });
    } finally {
      sub.unsubscribe();
    }
  });
});
