import { createEvent, EVENT_TYPES, type SpywatcherEvent } from '@spywatcher/events';
import { sampleEvents } from '@spywatcher/events/fixtures';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIngest, type Ingest, READER, storedIdCounts, WRITER } from './harness.ts';

let db: TestDatabase;
let ingest: Ingest;

beforeAll(async () => {
  db = await createTestDatabase();
  ingest = await createIngest(db.url, { maxEvents: 50, maxBytes: 64 * 1024 });
});
afterAll(async () => {
  await ingest?.close();
  await db?.drop();
});

const post = (payload: unknown, headers: Record<string, string> = {}) =>
  ingest.app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { authorization: `Bearer ${WRITER}`, 'content-type': 'application/json', ...headers },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });

describe('POST /v1/events', () => {
  it('stores one event of every type, and GET returns each', async () => {
    const events = Object.values(sampleEvents()) as SpywatcherEvent[];
    const res = await post(events);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ stored: 7, duplicate: 0, rejected: 0 });
    expect(body.results.map((r: { status: string }) => r.status)).toEqual(Array(7).fill('stored'));
    for (const e of events) {
      const got = await ingest.app.inject({
        url: `/v1/events/${e.type}/${e.id}`,
        headers: { authorization: `Bearer ${READER}` },
      });
      expect(got.statusCode).toBe(200);
      const stored = got.json();
      expect(stored.event).toMatchObject({ id: e.id, type: e.type, data: e.data });
      expect(new Date(stored.event.occurred_at).getTime()).toBe(new Date(e.occurred_at).getTime());
      expect(BigInt(stored.position)).toBeGreaterThan(0n);
    }
    expect([...(await storedIdCounts(ingest.sql)).values()].every((n) => n === 1)).toBe(true);
    const metrics = await ingest.app.inject({
      url: '/metrics',
      headers: { authorization: `Bearer ${WRITER}` },
    });
    expect(metrics.body).toMatch(/ingest_events_stored_total\{type="message",source="http".*\} 1/);
  });

  it('answers duplicate for an id already stored and for a repeat within the batch', async () => {
    const { join } = sampleEvents();
    expect((await post([join])).json().results[0].status).toBe('stored');
    const again = (await post([join, join])).json();
    expect(again).toMatchObject({ stored: 0, duplicate: 2 });
    const fresh = createEvent('join', join.data);
    const mixed = (await post([fresh, fresh])).json();
    expect(mixed.results.map((r: { status: string }) => r.status)).toEqual(['stored', 'duplicate']);
    expect((await storedIdCounts(ingest.sql)).get(join.id)).toBe(1);
  });

  it('rejects each invalid event with its field and reason, storing the valid ones', async () => {
    const { message, presence, join, role_change } = sampleEvents();
    const cases: [unknown, string, string][] = [
      ['not an object', '', 'not_object'],
      [{ ...message, type: undefined }, '/type', 'required'],
      [{ ...message, type: 'shout' }, '/type', 'unknown_type'],
      [{ ...message, id: 'x' }, '/id', 'invalid_format'],
      [{ ...message, occurred_at: '2026-13-45' }, '/occurred_at', 'invalid_format'],
      [{ ...message, occurred_at: '2014-12-31T00:00:00Z' }, '/occurred_at', 'out_of_range'],
      [
        { ...message, occurred_at: new Date(Date.now() + 3 * 86_400_000).toISOString() },
        '/occurred_at',
        'out_of_range',
      ],
      [{ ...message, surprise: true }, '/surprise', 'unknown_field'],
      [{ ...message, data: { ...message.data, content: 'é'.repeat(4001) } }, '/data/content', 'too_long'],
      [{ ...message, data: { ...message.data, channel_id: undefined } }, '/data/channel_id', 'required'],
      [{ ...message, data: { ...message.data, guild_id: 'guild' } }, '/data/guild_id', 'invalid_format'],
      [
        { ...message, data: { ...message.data, attachment_count: 1.5 } },
        '/data/attachment_count',
        'invalid_type',
      ],
      [{ ...presence, data: { ...presence.data, status: 'away' } }, '/data/status', 'invalid_value'],
      [{ ...join, data: { ...join.data, account_age_days: -1 } }, '/data/account_age_days', 'out_of_range'],
      [
        { ...role_change, data: { ...role_change.data, added_roles: Array(251).fill('1') } },
        '/data/added_roles',
        'too_many',
      ],
      [{ ...message, metadata: { big: 'x'.repeat(8200) } }, '/metadata', 'too_large'],
      [{ ...message, metadata: [1, 2] }, '/metadata', 'invalid_type'],
      [
        { ...message, data: { ...message.data, content: 'nul \u0000 byte' } },
        '/data/content',
        'invalid_value',
      ],
      [{ ...message, metadata: { k: ['\u0000'] } }, '/metadata/k/0', 'invalid_value'],
    ];
    const valid = createEvent('typing', sampleEvents().typing.data);
    const res = await post([...cases.map(([e]) => e), valid]);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ stored: 1, rejected: cases.length });
    cases.forEach(([, field, code], i) => {
      const r = body.results[i];
      expect(r.status, `case ${i}`).toBe('rejected');
      expect(r.errors, `case ${i}`).toContainEqual(expect.objectContaining({ field, code }));
      expect(typeof r.reason).toBe('string');
    });
    expect(body.results[cases.length]).toMatchObject({ status: 'stored', id: valid.id });
    expect((await storedIdCounts(ingest.sql)).has(message.id)).toBe(false);
  });

  it('takes NDJSON and answers a line that is not JSON on its own', async () => {
    const { typing, message } = sampleEvents();
    const body = `${JSON.stringify(typing)}\n{oops\n\n${JSON.stringify(message)}\n`;
    const res = await post(body, { 'content-type': 'application/x-ndjson' });
    expect(res.statusCode).toBe(200);
    expect(res.json().results.map((r: { status: string }) => r.status)).toEqual([
      'stored',
      'rejected',
      'stored',
    ]);
  });

  it('answers 413 beyond the event count or byte limit, 400 for an empty batch', async () => {
    const { typing } = sampleEvents();
    const many = Array.from({ length: 51 }, () => createEvent('typing', typing.data));
    const tooMany = await post(many);
    expect(tooMany.statusCode).toBe(413);
    expect(tooMany.json().error.code).toBe('PAYLOAD_TOO_LARGE');
    const huge = await post([{ ...typing, metadata: { pad: 'x'.repeat(70 * 1024) } }]);
    expect(huge.statusCode).toBe(413);
    const ndjsonHuge = await post(`${JSON.stringify({ pad: 'x'.repeat(70 * 1024) })}\n`, {
      'content-type': 'application/x-ndjson',
    });
    expect(ndjsonHuge.statusCode).toBe(413);
    expect((await post([])).statusCode).toBe(400);
    expect((await post('{nope')).statusCode).toBe(400);
  });

  it('needs events:write to post and events:read to read', async () => {
    const { typing } = sampleEvents();
    expect((await post([typing], { authorization: '' })).statusCode).toBe(401);
    expect((await post([typing], { authorization: `Bearer ${READER}` })).statusCode).toBe(403);
    const missing = await ingest.app.inject({
      url: `/v1/events/typing/${typing.id}`,
      headers: { authorization: `Bearer ${READER}` },
    });
    expect(missing.statusCode).toBe(404);
    expect((await ingest.app.inject({ url: `/v1/events/typing/${typing.id}` })).statusCode).toBe(401);
    expect(
      (
        await ingest.app.inject({
          url: `/v1/events/nope/${typing.id}`,
          headers: { authorization: `Bearer ${READER}` },
        })
      ).statusCode,
    ).toBe(400);
  });

  it('stores an event from 2016 by creating its partition on demand', async () => {
    const old = createEvent('message', sampleEvents().message.data, {
      occurredAt: new Date('2016-05-05T10:00:00Z'),
    });
    expect((await post([old])).json().results[0].status).toBe('stored');
  });

  it('rejects only the row PostgreSQL refuses when the schema let it through', async () => {
    // A constraint the event schema does not know about, in this file's own database.
    await ingest.sql.unsafe(
      'alter table join_events add constraint test_age check (account_age_days < 100000)',
    );
    try {
      const { join, typing } = sampleEvents();
      const old = { ...join, data: { ...join.data, account_age_days: 200_000 } };
      const body = (await post([typing, old])).json();
      expect(body.results.map((r: { status: string }) => r.status)).toEqual(['stored', 'rejected']);
      expect(body.results[1].reason).toMatch(/refused by PostgreSQL/);
    } finally {
      await ingest.sql.unsafe('alter table join_events drop constraint test_age');
    }
  });

  it('documents the events API in OpenAPI', async () => {
    const spec = (await ingest.app.inject({ url: '/openapi.json' })).json();
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/v1/events', '/v1/events/{type}/{id}']));
    expect(EVENT_TYPES.length).toBe(7);
  });
});
