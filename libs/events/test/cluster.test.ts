import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { testNatsNames, testNatsUrl } from '@spywatcher/testing';
import { type NatsCluster, startNatsCluster } from '@spywatcher/testing/nats-cluster';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deadLetterStreamName,
  ensureDeadLetterStream,
  ensureEventStream,
  StreamReplicasError,
} from '../src/stream.ts';

describe('stream replicas on a single server', () => {
  let nc: NatsConnection;
  const names = testNatsNames('r1');
  beforeAll(async () => {
    nc = await connect({ servers: testNatsUrl() });
  });
  afterAll(async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(names.stream).catch(() => {});
    await nc.close();
  });

  it('refuses three replicas with a message naming the setting and the reason', async () => {
    const jsm = await jetstreamManager(nc);
    const attempt = ensureEventStream(jsm, names, { replicas: 3 });
    await expect(attempt).rejects.toBeInstanceOf(StreamReplicasError);
    await expect(attempt).rejects.toThrow(
      `cannot keep stream ${names.stream} with 3 replica(s): the NATS server is not part of a JetStream cluster`,
    );
  });
});

describe('stream replicas in a three-node cluster', () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;
  const names = testNatsNames('r3');
  beforeAll(async () => {
    cluster = await startNatsCluster();
    nc = await connect({ servers: cluster.url.split(',') });
  }, 60_000);
  afterAll(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  it('creates both streams with one replica, then moves them to three in place', async () => {
    const jsm = await jetstreamManager(nc);
    await ensureEventStream(jsm, names);
    const single = await ensureDeadLetterStream(jsm, names);
    expect(single.config.num_replicas).toBe(1);

    const events = await ensureEventStream(jsm, names, { replicas: 3 });
    const dead = await ensureDeadLetterStream(jsm, names, { replicas: 3 });
    expect(events.config.num_replicas).toBe(3);
    expect(dead.config.num_replicas).toBe(3);
    // The server places the new replicas and then catches them up: wait until all three serve it.
    const servers = async () => {
      const placed = await jsm.streams.info(deadLetterStreamName(names));
      return [placed.cluster?.leader, ...(placed.cluster?.replicas ?? []).map((r) => r.name)].sort();
    };
    const all = cluster.nodes.map((n) => n.name).sort();
    for (let i = 0; i < 100 && JSON.stringify(await servers()) !== JSON.stringify(all); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(await servers()).toEqual(all);
  });
});
