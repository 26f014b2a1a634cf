import { isIP } from 'node:net';

/**
 * Conversions from what a Prisma-era SQLite file holds to PostgreSQL values. Each returns
 * the converted value or a `Problem` naming why PostgreSQL cannot store it as it was; none
 * throws. Values that are unusual but storable are returned and noted as findings instead.
 */
export interface Problem {
  problem: 'unparseable_date' | 'out_of_range' | 'missing' | 'invalid_text' | 'orphan';
  detail: string;
}

export const isProblem = (v: unknown): v is Problem =>
  typeof v === 'object' && v !== null && 'problem' in (v as object);

/**
 * Years 1-9999: every date in them has one ISO-8601 form that both JavaScript and PostgreSQL
 * write and read, and its epoch milliseconds survive the float8 seconds verification reads.
 */
export const MIN_MS = -62_135_596_800_000;
export const MAX_MS = 253_402_300_800_000;
/** Discord's first year: an event or account date before it is reported as old. */
export const DISCORD_MS = Date.UTC(2015, 0, 1);

const ISO_NO_ZONE = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;

/**
 * Prisma stores DateTime in SQLite as INTEGER milliseconds since the epoch; older rows and
 * hand-made ones hold ISO-8601 text or SQLite's CURRENT_TIMESTAMP text (UTC without a zone).
 */
export function toEpochMs(value: unknown, column: string): number | Problem {
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return { problem: 'unparseable_date', detail: `${column}: ${value}` };
    ms = value;
  } else if (typeof value === 'bigint') {
    ms = Number(value);
  } else if (typeof value === 'string') {
    const s = value.trim();
    if (/^-?\d+$/.test(s)) ms = Number(s);
    else {
      // Text without a zone is UTC (that is what SQLite's CURRENT_TIMESTAMP writes).
      const text = ISO_NO_ZONE.test(s) ? `${s.replace(' ', 'T')}Z` : s;
      ms = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : Number.NaN;
      if (Number.isNaN(ms)) {
        return { problem: 'unparseable_date', detail: `${column}: ${JSON.stringify(value.slice(0, 40))}` };
      }
    }
  } else if (value === null || value === undefined) {
    return { problem: 'missing', detail: `${column} is NULL` };
  } else {
    return { problem: 'unparseable_date', detail: `${column}: not a date` };
  }
  if (!(ms >= MIN_MS && ms < MAX_MS)) {
    return { problem: 'out_of_range', detail: `${column}: ${ms} ms is outside the years 1-9999` };
  }
  return ms;
}

/** How a storable date is unusual, if it is: the epoch itself, before Discord, or after `now`. */
export function dateFinding(ms: number, now: number): 'sentinel_date' | 'old_date' | 'future_date' | null {
  if (ms === 0) return 'sentinel_date';
  if (ms < DISCORD_MS) return 'old_date';
  if (ms > now) return 'future_date';
  return null;
}

/** Required text: NULL (the column is NOT NULL) and NUL characters (PostgreSQL text cannot
 * hold U+0000) are problems; `nonEmpty` is for keys that rows are matched by. */
export function toText(value: unknown, column: string, opts: { nonEmpty?: boolean } = {}): string | Problem {
  if (value === null || value === undefined) return { problem: 'missing', detail: `${column} is NULL` };
  const s = typeof value === 'string' ? value : String(value);
  if (s.includes('\0')) return { problem: 'invalid_text', detail: `${column} contains a NUL character` };
  if (opts.nonEmpty && s === '') return { problem: 'missing', detail: `${column} is empty` };
  return s;
}

export function toOptionalText(value: unknown, column: string): string | null | Problem {
  if (value === null || value === undefined) return null;
  return toText(value, column);
}

/** Number of Unicode code points (PostgreSQL's char_length), cheap for short strings. */
export function codePointLength(s: string, limit: number): number {
  if (s.length <= limit) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

export function toInt32(value: unknown, column: string): number | Problem {
  const n = typeof value === 'bigint' ? Number(value) : typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n)) {
    return value === null || value === undefined
      ? { problem: 'missing', detail: `${column} is NULL` }
      : { problem: 'out_of_range', detail: `${column}: ${String(value).slice(0, 40)} is not a whole number` };
  }
  if (n < -2147483648 || n > 2147483647)
    return { problem: 'out_of_range', detail: `${column}: ${n} does not fit a 32-bit integer` };
  return n;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

export function toInt64(value: unknown, column: string): bigint | Problem {
  try {
    if (value === null || value === undefined) return { problem: 'missing', detail: `${column} is NULL` };
    if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new Error('unsafe');
    const n = BigInt(typeof value === 'string' ? value.trim() : (value as number | bigint));
    if (n < INT64_MIN || n > INT64_MAX) throw new Error('range');
    return n;
  } catch {
    return { problem: 'out_of_range', detail: `${column}: ${String(value).slice(0, 40)}` };
  }
}

export function toBool(value: unknown, column: string): boolean | Problem {
  if (value === 1 || value === 1n || value === '1' || value === 'true') return true;
  if (value === 0 || value === 0n || value === '0' || value === 'false') return false;
  if (value === null || value === undefined) return { problem: 'missing', detail: `${column} is NULL` };
  return { problem: 'out_of_range', detail: `${column}: ${String(value).slice(0, 20)} is not 0/1` };
}

/** "desktop,web" -> ['desktop', 'web']; blanks between commas are dropped, '' -> []. */
export function splitList(value: unknown, column: string): string[] | Problem {
  const s = toText(value, column);
  if (isProblem(s)) return s;
  if (s === '') return [];
  const out: string[] = [];
  for (const part of s.split(',')) {
    const t = part.trim();
    if (t !== '') out.push(t);
  }
  return out;
}

function ipv4Words(text: string): number[] {
  const p = text.split('.').map(Number);
  return [(p[0]! << 8) | p[1]!, (p[2]! << 8) | p[3]!];
}

function ipv6Words(addr: string): number[] {
  let a = addr;
  const lastColon = a.lastIndexOf(':');
  const last = a.slice(lastColon + 1);
  if (last.includes('.')) {
    const [x, y] = ipv4Words(last);
    a = `${a.slice(0, lastColon + 1)}${x!.toString(16)}:${y!.toString(16)}`;
  }
  const hex = (x: string) => Number.parseInt(x, 16);
  const parts = a.split('::');
  const head = parts[0] ? parts[0].split(':').map(hex) : [];
  if (parts.length === 1) return head;
  const rest = parts[1] ? parts[1].split(':').map(hex) : [];
  return [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
}

/** IPv6 text exactly as PostgreSQL prints an inet (its own variant of RFC 5952). */
function formatIpv6(w: number[]): string {
  let best = { base: -1, len: 0 };
  let cur = { base: -1, len: 0 };
  for (let i = 0; i < 8; i++) {
    if (w[i] === 0) {
      if (cur.base === -1) cur = { base: i, len: 1 };
      else cur.len++;
    } else if (cur.base !== -1) {
      if (best.base === -1 || cur.len > best.len) best = cur;
      cur = { base: -1, len: 0 };
    }
  }
  if (cur.base !== -1 && (best.base === -1 || cur.len > best.len)) best = cur;
  if (best.base !== -1 && best.len < 2) best = { base: -1, len: 0 };
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (best.base !== -1 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 5 && w[5] === 0xffff))) {
      out += `${w[6]! >> 8}.${w[6]! & 0xff}.${w[7]! >> 8}.${w[7]! & 0xff}`;
      break;
    }
    out += w[i]!.toString(16);
  }
  if (best.base !== -1 && best.base + best.len === 8) out += ':';
  return out;
}

/**
 * Validates an IPv4/IPv6 address (optionally with /bits) and returns it in PostgreSQL's
 * `inet` output form, so the content hash over the stored value matches the source's.
 */
export function toInet(value: unknown, column: string): string | Problem {
  const bad = (): Problem => ({
    problem: 'out_of_range',
    detail: `${column}: ${JSON.stringify(String(value).slice(0, 60))} is not an IP address`,
  });
  if (typeof value !== 'string')
    return value === null || value === undefined
      ? { problem: 'missing', detail: `${column} is NULL` }
      : bad();
  const s = value.trim();
  const slash = s.indexOf('/');
  const addr = slash >= 0 ? s.slice(0, slash) : s;
  const bitsText = slash >= 0 ? s.slice(slash + 1) : undefined;
  if (bitsText !== undefined && !/^\d{1,3}$/.test(bitsText)) return bad();
  const family = addr.includes('%') ? 0 : isIP(addr);
  if (family === 0) return bad();
  const max = family === 4 ? 32 : 128;
  const bits = bitsText === undefined ? max : Number(bitsText);
  if (bits > max) return bad();
  const text =
    family === 4 ? addr.split('.').map(Number).join('.') : formatIpv6(ipv6Words(addr.toLowerCase()));
  return bits === max ? text : `${text}/${bits}`;
}
