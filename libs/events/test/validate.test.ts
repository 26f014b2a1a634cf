import { EVENT_TYPES } from '@spywatcher/db';
import { describe, expect, it } from 'vitest';
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
