import { describe, expect, it } from 'vitest';
import { EVENT_TYPES } from '../src/event-types.ts';
import { decodeEventPayload } from '../src/payload.ts';
import { EVENT_COLUMNS, eventRow, rowToEvent } from '../src/rows.ts';
import { uuidv7Time } from '../src/uuid.ts';
import { validateEvent } from '../src/validate.ts';
import { sampleEvents } from './fixtures.ts';

// Through JSON, as events arrive: a key set to undefined is then absent.
const codesOf = (value: unknown) => {
  const r = validateEvent(JSON.parse(JSON.stringify(value)));
  return r.ok ? [] : r.errors.map((e) => `${e.field}:${e.code}`);
};

describe('validateEvent', () => {
  it('accepts one valid event of every type', () => {
    const events = sampleEvents();
    for (const type of EVENT_TYPES) expect(validateEvent(events[type]), type).toMatchObject({ ok: true });
  });

  it('gives every refused field with its path and code', () => {
    const { message, presence, join } = sampleEvents();
    expect(codesOf(42)).toEqual([':not_object']);
    expect(codesOf({ ...message, type: undefined })).toEqual(['/type:required']);
    expect(codesOf({ ...message, type: 'shout' })).toEqual(['/type:unknown_type']);
    expect(codesOf({ ...message, id: 'nope' })).toEqual(['/id:invalid_format']);
    expect(codesOf({ ...message, occurred_at: 'yesterday' })).toEqual(['/occurred_at:invalid_format']);
    expect(codesOf({ ...message, occurred_at: '2010-01-01T00:00:00Z' })).toEqual([
      '/occurred_at:out_of_range',
    ]);
    expect(codesOf({ ...message, extra: 1 })).toEqual(['/extra:unknown_field']);
    expect(codesOf({ ...message, data: { ...message.data, content: 'x'.repeat(4001) } })).toEqual([
      '/data/content:too_long',
    ]);
    expect(codesOf({ ...message, data: { ...message.data, user_id: undefined } })).toEqual([
      '/data/user_id:required',
    ]);
    expect(codesOf({ ...message, data: { ...message.data, user_id: 'abc' } })).toEqual([
      '/data/user_id:invalid_format',
    ]);
    expect(codesOf({ ...message, data: { ...message.data, embed_count: -1 } })).toEqual([
      '/data/embed_count:out_of_range',
    ]);
    expect(codesOf({ ...message, data: { ...message.data, embed_count: '1' } })).toEqual([
      '/data/embed_count:invalid_type',
    ]);
    expect(codesOf({ ...presence, data: { ...presence.data, clients: ['fridge'] } })).toContain(
      '/data/clients/0:invalid_value',
    );
    expect(codesOf({ ...join, data: { ...join.data, account_age_days: -3 } })).toEqual([
      '/data/account_age_days:out_of_range',
    ]);
    expect(
      codesOf({
        ...message,
        metadata: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, i])),
      }),
    ).toEqual(['/metadata:too_many']);
    expect(codesOf({ ...message, metadata: { blob: 'x'.repeat(9000) } })).toEqual(['/metadata:too_large']);
    expect(codesOf({ ...message, data: { ...message.data, username: '' } })).toEqual([
      '/data/username:required',
    ]);
    expect(codesOf({ ...message, data: { ...message.data, content: 'a\u0000b' } })).toEqual([
      '/data/content:invalid_value',
    ]);
  });

  it('accepts empty message content and absent optional fields', () => {
    const { message } = sampleEvents();
    const { message_id: _m, attachment_count: _a, embed_count: _e, ...rest } = message.data;
    expect(validateEvent({ ...message, data: { ...rest, content: '' } }).ok).toBe(true);
  });
});

describe('validateEvent on hostile input', () => {
  const deepJson = (levels: number) => `${'{"a":'.repeat(levels - 1)}{}${'}'.repeat(levels - 1)}`;

  it('refuses metadata nested 5,000 levels without throwing, and accepts 16 levels', () => {
    const { message } = sampleEvents();
    const text = JSON.stringify(message).replace(/}$/, `,"metadata":${deepJson(5000)}}`);
    const r = validateEvent(JSON.parse(text));
    expect(r).toMatchObject({ ok: false, errors: [{ field: '/metadata', code: 'too_deep' }] });
    const ok = JSON.parse(JSON.stringify(message).replace(/}$/, `,"metadata":${deepJson(16)}}`));
    expect(validateEvent(ok).ok).toBe(true);
    const tooDeep = JSON.parse(JSON.stringify(message).replace(/}$/, `,"metadata":${deepJson(17)}}`));
    expect(validateEvent(tooDeep).ok).toBe(false);
  });

  it('names the field holding a lone surrogate, in values and keys', () => {
    const { message } = sampleEvents();
    expect(codesOf({ ...message, data: { ...message.data, content: 'a\ud800' } })).toEqual([
      '/data/content:invalid_value',
    ]);
    expect(codesOf({ ...message, data: { ...message.data, username: '\udc00x' } })).toEqual([
      '/data/username:invalid_value',
    ]);
    expect(codesOf({ ...message, metadata: { a: { b: 'x\ud83d' } } })).toEqual([
      '/metadata/a/b:invalid_value',
    ]);
    expect(codesOf({ ...message, metadata: { 'k\ud800': 1 } })).toEqual(['/metadata/k\ud800:invalid_value']);
    // A well-formed pair (an emoji) is fine.
    expect(codesOf({ ...message, data: { ...message.data, content: 'ok \ud83d\ude00' } })).toEqual([]);
  });

  it('turns an exception while checking into the event’s own rejection', () => {
    const { typing } = sampleEvents();
    const hostile = new Proxy(typing, {
      ownKeys() {
        throw new Error('boom');
      },
    });
    expect(validateEvent(hostile)).toMatchObject({ ok: false, errors: [{ code: 'unprocessable' }] });
  });

  it('gives a valid event its id in lower case', () => {
    const { join } = sampleEvents();
    const r = validateEvent({ ...join, id: join.id.toUpperCase() });
    expect(r.ok && r.event.id).toBe(join.id);
  });

  it('decodes payloads, refusing invalid UTF-8 and JSON', () => {
    expect(decodeEventPayload(Buffer.from('{"a":"é"}'))).toEqual({ ok: true, value: { a: 'é' } });
    expect(decodeEventPayload(Buffer.from([0x7b, 0xff, 0x7d]))).toMatchObject({
      ok: false,
      error: { reason: 'payload is not valid UTF-8' },
    });
    expect(decodeEventPayload(Buffer.from('{oops'))).toMatchObject({ ok: false });
  });
});

describe('rows', () => {
  it('maps every type to its columns and back', () => {
    const events = sampleEvents(new Date('2024-03-04T05:06:07.000Z'));
    for (const type of EVENT_TYPES) {
      const event = events[type];
      const row = eventRow(event);
      expect(row).toHaveLength(EVENT_COLUMNS[type].length);
      const record = Object.fromEntries(EVENT_COLUMNS[type].map((c, i) => [c, row[i]]));
      const back = rowToEvent(type, { ...record, occurred_at: new Date(event.occurred_at) });
      expect(back.id).toBe(event.id);
      expect(back.data).toMatchObject(
        Object.fromEntries(Object.entries(event.data).filter(([, v]) => v !== undefined)),
      );
    }
  });

  it('uses the occurrence time for default ids', () => {
    const at = new Date('2020-02-02T02:02:02.000Z');
    expect(uuidv7Time(sampleEvents(at).join.id)).toBe(at.getTime());
  });
});
