import { hostname } from 'node:os';
import { databaseNameOf } from '@spywatcher/db';
import {
  createEvent,
  createPublisher,
  EVENT_TYPES,
  eventTable,
  type PauseReply,
  type ReplayReply,
  type SpywatcherEvent,
  subjects,
} from '@spywatcher/events';
import { sampleEvents } from '@spywatcher/events/fixtures';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replayStore } from '../src/ingest.ts';
import { serveIngestControl, WriteGate } from '../src/pause.ts';
import { replayStream } from '../src/replay.ts';
import { createIngest, type Ingest, quietLogger, storedIdCounts, WRITER, waitFor } from './harness.ts';

let db: TestDatabase;
let ingest: Ingest;
let control: { stop: () => void };
const gate = new WriteGate(7);

beforeAll(async () => {
  db = await createTestDatabase();
  ingest = await createIngest(db.url, { gate });
  await ingest.startConsumer();
  control = serveIngestControl({
    nc: ingest.nc,
    names: ingest.names,
    gate,
    database: databaseNameOf(db.url),
    instance: `${hostname()}:test`,
    logger: quietLogger,
    replay: (since) =>
      replayStream(
        {
          nc: ingest.nc,
          names: ingest.names,
          store: replayStore({ sql: ingest.sql, cache: ingest.cache, nc: ingest.nc, names: ingest.names }),
          batchSize: 50,
        },
        since,
      ),
  });
});
afterAll(async () => {
  control?.stop();
  await ingest?.close();
  await db?.drop();
});

const joins = (n: number): SpywatcherEvent[] =>
  Array.from({ length: n }, () => createEvent('join', sampleEvents().join.data) as SpywatcherEvent);

const control$ = (action: 'pause' | 'renew' | 'resume' | 'replay') =>
  subjects(ingest.names).ingestControl(action);

async function pause(holder: string, leaseMs: number): Promise<PauseReply> {
  const reply = await ingest.nc.request(
    control$('pause'),
    JSON.stringify({ database: databaseNameOf(db.url), holder, leaseMs }),
    { timeout: 10_000 },
  );
  return reply.json<PauseReply>();
}

const post = (events: SpywatcherEvent[]) =>
  ingest.app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { authorization: `Bearer ${WRITER}` },
    payload: events,
  });

async function count(ids: string[]): Promise<number> {
  const stored = await storedIdCounts(ingest.sql);
  return ids.filter((id) => stored.has(id)).length;
}

describe('writer fence', () => {
  it('pause: drained reply, HTTP 503 with Retry-After, NATS events wait in JetStream; resume stores them', async () => {
    const publisher = createPublisher({ nc: ingest.nc, names: ingest.names, maxInFlight: 64 });
    const before = joins(50);
    await publisher.publishAll(before);
    await waitFor('the first events', async () =>
      (await count(before.map((e) => e.id))) === 50 ? true : undefined,
    );

    expect(await pause('ops-a', 60_000)).toMatchObject({ ok: true, paused: true });
    const refused = await post(joins(3));
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['retry-after']).toBe('7');
    expect(refused.json().error.message).toMatch(/paused .* restored/);

    const during = joins(40);
    await publisher.publishAll(during);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await count(during.map((e) => e.id))).toBe(0);

    ingest.nc.publish(control$('resume'), JSON.stringify({ holder: 'ops-a' }));
    await waitFor('the events published during the pause', async () =>
      (await count(during.map((e) => e.id))) === 40 ? true : undefined,
    );
    expect((await post(joins(2))).statusCode).toBe(200);
  });

  it('a pause that is not renewed ends by itself (a crashed ops never leaves ingest paused)', async () => {
    expect(await pause('ops-crashed', 400)).toMatchObject({ paused: true });
    expect((await post(joins(1))).statusCode).toBe(503);
    await waitFor('the lease to run out', async () =>
      (await post(joins(1))).statusCode === 200 ? true : undefined,
    );
  });

  it('ignores a pause for another database', async () => {
    const replies = await ingest.nc.requestMany(
      control$('pause'),
      JSON.stringify({ database: 'some_other_database', holder: 'x', leaseMs: 60_000 }),
      { maxWait: 500 },
    );
    let n = 0;
    for await (const _ of replies) n++;
    expect(n).toBe(0);
    expect(gate.paused).toBe(false);
  });

  it('replay: events missing from the database come back from the stream, idempotent by id', async () => {
    const since = new Date(Date.now() - 60_000);
    const events = joins(30);
    const publisher = createPublisher({ nc: ingest.nc, names: ingest.names, maxInFlight: 64 });
    await publisher.publishAll(events);
    await waitFor('stored', async () => ((await count(events.map((e) => e.id))) === 30 ? true : undefined));
    // as after a restore to an older backup: 30 of the log's events are gone
    const gone = events.slice(0, 30).map((e) => e.id);
    for (const type of EVENT_TYPES)
      await ingest.sql.unsafe(`delete from ${eventTable(type)} where id = any($1::uuid[])`, [gone]);
    // and from the id registry, as a database restored to before them has neither
    await ingest.sql`delete from event_ids where id = any(${gone}::uuid[])`;
    const total = (await storedIdCounts(ingest.sql)).size;

    const reply = await ingest.nc.request(
      control$('replay'),
      JSON.stringify({ database: databaseNameOf(db.url), since: since.toISOString() }),
      { timeout: 30_000 },
    );
    const r = reply.json<ReplayReply>();
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(r.report).toMatchObject({ replayed: 30, beyond_retention: false, invalid: 0 });
    // every event the stream holds since then is either replayed or found already stored
    expect(r.report!.already_present + r.report!.replayed).toBe(r.report!.messages);
    expect((await storedIdCounts(ingest.sql)).size).toBe(total + 30);
    const counts = await storedIdCounts(ingest.sql);
    for (const id of gone) expect(counts.get(id)).toBe(1);

    // retention dropped the stream's older messages: what was before them cannot come back, and it says so
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const jsm = await jetstreamManager(ingest.nc);
    await jsm.streams.purge(ingest.names.stream, { keep: 5 });
    const old = await ingest.nc.request(
      control$('replay'),
      JSON.stringify({
        database: databaseNameOf(db.url),
        since: new Date(Date.now() - 86_400_000).toISOString(),
      }),
      { timeout: 30_000 },
    );
    expect(old.json<ReplayReply>().report).toMatchObject({
      replayed: 0,
      already_present: 5,
      beyond_retention: true,
    });
  });
});
