import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createEvent, type SpywatcherEvent, subjects } from '@spywatcher/events';
import { sampleEvents } from '@spywatcher/events/fixtures';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeadLetter } from '../src/consumer.ts';
import { createIngest, type Ingest, READER, storedIdCounts, WRITER, waitFor } from './harness.ts';

// Poison input on both write paths: an event that cannot be stored is answered (HTTP) or
// dead-lettered (NATS) on its own, and never fails or holds back the others.

let db: TestDatabase;
let ingest: Ingest;

beforeAll(async () => {
  db = await createTestDatabase();
  ingest = await createIngest(db.url);
  await ingest.startConsumer();
});
afterAll(async () => {
  await ingest?.close();
  await db?.drop();
});

const DEEP = '__deep__';
/** A metadata object `levels` deep: JSON.stringify itself cannot write one thousands deep. */
const deep = (levels: number) => `${DEEP}${levels}`;
const toJson = (value: unknown) =>
  JSON.stringify(value).replace(
    new RegExp(`"${DEEP}(\\d+)"`, 'g'),
    (_m, n) => `${'{"a":'.repeat(Number(n) - 1)}{}${'}'.repeat(Number(n) - 1)}`,
  );

function nested(levels: number): unknown[] {
  let v: unknown[] = [];
  for (let i = 1; i < levels; i++) v = [v];
  return v;
}

/** Poison events with the field and code each must be refused with. */
function poison(): [SpywatcherEvent, string, string][] {
  const { message, typing } = sampleEvents();
  const fresh = <T extends SpywatcherEvent>(e: T): T => ({
    ...e,
    id: createEvent(e.type, e.data as never).id,
  });
  return [
    [{ ...fresh(message), metadata: deep(5000) as never }, '/metadata', 'too_deep'],
    [{ ...fresh(message), metadata: deep(17) as never }, '/metadata', 'too_deep'],
    [
      { ...fresh(message), data: { ...message.data, content: 'lone \ud800 surrogate' } },
      '/data/content',
      'invalid_value',
    ],
    [
      { ...fresh(message), data: { ...message.data, content: 'tail \udfff' } },
      '/data/content',
      'invalid_value',
    ],
    [{ ...fresh(typing), metadata: { note: ['ok', 'bad \ud800'] } }, '/metadata/note/1', 'invalid_value'],
    [{ ...fresh(typing), metadata: { ['key \ud800']: 1 } }, '/metadata/key \ud800', 'invalid_value'],
    [{ ...fresh(typing), data: { ...typing.data, username: nested(40) } } as never, '/data', 'too_deep'],
  ] as [SpywatcherEvent, string, string][];
}

const post = (payload: string | Buffer, contentType = 'application/json') =>
  ingest.app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { authorization: `Bearer ${WRITER}`, 'content-type': contentType },
    payload,
  });
const get = (type: string, id: string) =>
  ingest.app.inject({ url: `/v1/events/${type}/${id}`, headers: { authorization: `Bearer ${READER}` } });

describe('HTTP: poison events', () => {
  it('answers each poison event rejected with its field, and stores the good ones of the batch', async () => {
    const cases = poison();
    const good = Array.from({ length: 3 }, () => createEvent('join', sampleEvents().join.data));
    const res = await post(toJson([good[0], ...cases.map(([e]) => e), good[1], good[2]]));
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ stored: 3, rejected: cases.length, conflict: 0 });
    cases.forEach(([e, field, code], i) => {
      const r = body.results[i + 1];
      expect(r, `case ${i}`).toMatchObject({
        status: 'rejected',
        id: e.id,
        field,
        errors: [{ field, code }],
      });
    });
    expect(body.results[1].reason).toMatch(/deeper than 16 levels/);
    expect(body.results[3].reason).toMatch(/lone UTF-16 surrogate at character 5/);
    const counts = await storedIdCounts(ingest.sql);
    for (const e of good) expect(counts.get(e.id)).toBe(1);
    for (const [e] of cases) expect(counts.has(e.id)).toBe(false);
  });

  it('refuses a body that is not UTF-8 with a clear 400 and stores nothing of it', async () => {
    const e = createEvent('message', { ...sampleEvents().message.data, content: 'héllo' });
    const bytes = Buffer.from(JSON.stringify([e]), 'utf8');
    const at = bytes.indexOf(Buffer.from('é', 'utf8'));
    bytes[at] = 0xff; // not a UTF-8 lead byte
    for (const type of ['application/json', 'application/x-ndjson']) {
      const res = await post(
        type === 'application/json' ? bytes : Buffer.concat([bytes.subarray(1, -1), Buffer.from('\n')]),
        type,
      );
      expect(res.statusCode, type).toBe(400);
      expect(res.json().error.message).toMatch(/not valid UTF-8/);
    }
    expect((await storedIdCounts(ingest.sql)).has(e.id)).toBe(false);
  });
});

describe('one id, one event', () => {
  it('answers conflict for the same id with another time, type or data, and duplicate for the same event', async () => {
    const { message } = sampleEvents();
    const later = new Date(Date.parse(message.occurred_at) + 60_000).toISOString();
    expect((await post(JSON.stringify([message]))).json().results[0].status).toBe('stored');
    const asTyping = { ...sampleEvents().typing, id: message.id };
    const attempts = [
      { ...message, occurred_at: later },
      asTyping,
      { ...message, data: { ...message.data, content: 'edited' } },
      { ...message, metadata: { other: true } },
      message,
      { ...message, id: message.id.toUpperCase() },
    ];
    const body = (await post(JSON.stringify(attempts))).json();
    expect(body.results.map((r: { status: string }) => r.status)).toEqual([
      'conflict',
      'conflict',
      'conflict',
      'conflict',
      'duplicate',
      'duplicate',
    ]);
    expect(body).toMatchObject({ stored: 0, duplicate: 2, conflict: 4, rejected: 0 });
    expect(body.results[0]).toMatchObject({
      id: message.id,
      field: '/id',
      errors: [{ field: '/id', code: 'conflict' }],
      stored_as: { type: 'message', occurred_at: new Date(message.occurred_at).toISOString() },
    });
    expect(body.results[0].reason).toContain(message.id);
    expect((await storedIdCounts(ingest.sql)).get(message.id)).toBe(1);
    // GET names the one stored event, under its own type only.
    expect((await get('message', message.id.toUpperCase())).json().event).toMatchObject({ id: message.id });
    expect((await get('typing', message.id)).statusCode).toBe(404);
  });

  it('stores an upper-case id in lower case, and tells repeats within a batch apart', async () => {
    const { join } = sampleEvents();
    const upper = { ...join, id: join.id.toUpperCase() };
    const body = (
      await post(
        JSON.stringify([
          upper,
          join,
          { ...join, occurred_at: new Date(Date.parse(join.occurred_at) + 1000).toISOString() },
        ]),
      )
    ).json();
    expect(body.results.map((r: { status: string; id: string }) => [r.status, r.id])).toEqual([
      ['stored', join.id],
      ['duplicate', join.id],
      ['conflict', join.id],
    ]);
    const [row] = await ingest.sql<{ id: string }[]>`select id::text from join_events where id = ${join.id}`;
    expect(row!.id).toBe(join.id);
  });

  it('refuses a second row for a registered id from any writer, in any table', async () => {
    const { message } = sampleEvents();
    expect((await post(JSON.stringify([message]))).json().stored).toBe(1);
    await ingest.sql`select sw_ensure_partition('typing_events', now())`;
    await expect(
      ingest.sql`insert into typing_events (id, occurred_at, user_id, username, channel_id, channel_name, guild_id)
                 values (${message.id}, now(), '1', 'u', '2', 'c', '3')`,
    ).rejects.toMatchObject({ code: '23505', constraint_name: 'event_ids_pkey' });
    const [r] = await ingest.sql<{ type: string }[]>`select type from event_ids where id = ${message.id}`;
    expect(r!.type).toBe('message');
  });
});

describe('NATS: poison events', () => {
  it('dead-letters each poison event with its reason while the good ones are stored and acked', async () => {
    const jsm = await jetstreamManager(ingest.nc);
    const js = jetstream(ingest.nc);
    const s = subjects(ingest.names);
    const deadStream = `${ingest.names.stream}_DEAD`;
    await waitFor('dead stream', () => jsm.streams.info(deadStream));
    const earlier = (await jsm.streams.info(deadStream)).state.messages;

    const { message } = sampleEvents();
    await js.publish(s.event('message'), JSON.stringify(message), { msgID: message.id });
    await waitFor('first stored', async () =>
      (await storedIdCounts(ingest.sql)).has(message.id) ? true : undefined,
    );

    const cases = poison();
    const good = Array.from({ length: 20 }, () => createEvent('join', sampleEvents().join.data));
    const conflicting = {
      ...message,
      occurred_at: new Date(Date.parse(message.occurred_at) + 1000).toISOString(),
    };
    const upper = createEvent('join', sampleEvents().join.data);
    const badUtf8 = Buffer.from(JSON.stringify(createEvent('typing', sampleEvents().typing.data)));
    badUtf8[badUtf8.indexOf('"type"')] = 0xc3; // a lead byte without its continuation
    const sends: [string, string | Uint8Array, string][] = [
      ...good.slice(0, 10).map((e) => [s.event(e.type), JSON.stringify(e), e.id] as [string, string, string]),
      ...cases.map(([e]) => [s.event(e.type), toJson(e), e.id] as [string, string, string]),
      [s.event('message'), JSON.stringify(conflicting), `${message.id}-again`],
      [s.event('typing'), badUtf8, 'bad-utf8'],
      [s.event('join'), JSON.stringify({ ...upper, id: upper.id.toUpperCase() }), upper.id.toUpperCase()],
      ...good.slice(10).map((e) => [s.event(e.type), JSON.stringify(e), e.id] as [string, string, string]),
    ];
    for (const [subject, payload, msgID] of sends) await js.publish(subject, payload, { msgID });

    const counts = await waitFor('good events stored', async () => {
      const c = await storedIdCounts(ingest.sql);
      return [...good, upper].every((e) => c.get(e.id) === 1) ? c : undefined;
    });
    for (const [e] of cases) expect(counts.has(e.id)).toBe(false);
    expect(counts.get(message.id)).toBe(1);

    const expected = cases.length + 2;
    await waitFor('dead letters', async () =>
      (await jsm.streams.info(deadStream)).state.messages >= earlier + expected ? true : undefined,
    );
    const letters: DeadLetter[] = [];
    for (let seq = earlier + 1; seq <= earlier + expected; seq++) {
      letters.push((await jsm.streams.getMessage(deadStream, { seq }))!.json<DeadLetter>());
    }
    for (const [e, field, code] of cases) {
      const letter = letters.find((l) => l.payload === toJson(e));
      expect(letter, field).toMatchObject({ reason: 'invalid', errors: [{ field, code }] });
    }
    const conflict = letters.find((l) => l.reason === 'conflict')!;
    expect(conflict.payload).toBe(JSON.stringify(conflicting));
    expect(conflict.message).toContain(message.id);
    expect(letters.find((l) => l.message.includes('UTF-8'))).toMatchObject({ reason: 'invalid' });
    await waitFor('all acked', async () => {
      const info = await jsm.consumers.info(ingest.names.stream, 'ingest');
      return info.num_ack_pending === 0 && info.num_pending === 0 ? true : undefined;
    });
  });
});
