/**
 * Opaque keyset cursors: base64url JSON naming the last row returned. Times travel as the
 * exact text PostgreSQL printed (microseconds), never through a JS Date, so a row is never
 * skipped or repeated for want of precision.
 */
export interface TimeKey {
  /** occurred_at as ISO text with microseconds */
  t: string;
  /** event id (uuid) */
  i: string;
}

export interface NewestCursor extends TimeKey {
  k: 'new';
}

export interface RelevanceCursor extends TimeKey {
  k: 'rel';
  /** rank of the last row, as text */
  r: string;
  /** the candidate window the last row came from: newest (w) and oldest (l) row, inclusive */
  w: TimeKey;
  l: TimeKey;
}

export interface TimelineCursor extends TimeKey {
  k: 'tl';
  /** event type of the last row (ties on time and id are broken by type) */
  y: string;
}

export type Cursor = NewestCursor | RelevanceCursor | TimelineCursor;

export class CursorError extends Error {}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

const TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.\d{6}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RANK = /^\d{1,3}(\.\d{1,12})?$/;

/** A time PostgreSQL can hold and a stored row can have: years 0001-9999, a real day and time of day. */
function isTime(text: string): boolean {
  const m = TIME.exec(text);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return (
    year >= 1 &&
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    hour < 24 &&
    minute < 60 &&
    second < 60
  );
}

function isTimeKey(v: unknown): v is TimeKey {
  const o = v as TimeKey | null;
  return typeof o?.t === 'string' && isTime(o.t) && typeof o.i === 'string' && UUID.test(o.i);
}

/** Decodes and validates a cursor of the expected kind, or throws CursorError. */
export function decodeCursor<K extends Cursor['k']>(raw: string, kind: K): Extract<Cursor, { k: K }> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw new CursorError('cursor is not one this API returned');
  }
  const c = value as Cursor;
  if (!isTimeKey(c) || c.k !== kind) {
    throw new CursorError(
      c && typeof c === 'object' && 'k' in c && c.k !== kind
        ? 'cursor belongs to another sort order or endpoint'
        : 'cursor is not one this API returned',
    );
  }
  if (c.k === 'rel' && !(typeof c.r === 'string' && RANK.test(c.r) && isTimeKey(c.w) && isTimeKey(c.l))) {
    throw new CursorError('cursor is not one this API returned');
  }
  if (c.k === 'tl' && !(typeof c.y === 'string' && /^[a-z_]{1,32}$/.test(c.y))) {
    throw new CursorError('cursor is not one this API returned');
  }
  return c as Extract<Cursor, { k: K }>;
}
