import { CopyBuffer } from '@spywatcher/db';
import { ContentHash } from './canonical.ts';
import { RowEncoder } from './encode.ts';
import { legacyEventId } from './ids.ts';
import {
  type ConvertContext,
  eventCreatedAt,
  type Findings,
  moveNotes,
  note,
  type Row,
  type TableSpec,
} from './tables.ts';
import { dateFinding, isProblem, type Problem } from './values.ts';

export interface RejectLine {
  table: string;
  legacy_id: string;
  reason: string;
  detail: string;
  row: Row;
}

/** Rows read, converted and encoded together: what one COPY and one checkpoint cover. */
export interface Batch {
  /** The COPY data (UTF-8, text format); empty when no COPY lines were asked for. */
  copy: Buffer;
  rows: number;
  rejects: RejectLine[];
  lastKey: string | null;
  hash: bigint;
  findings: Findings;
  /** Days (epoch ms / 86,400,000) of the event rows, for partitions. */
  days: number[];
  minMs: number | null;
  /** Milliseconds spent reading rows from SQLite and converting them (encoding and hashing). */
  readMs: number;
  convertMs: number;
}

const DAY = 86_400_000;
const MAX_BATCH_BYTES = 8 * 1024 * 1024;

/** Legacy users carry OAuth tokens; a reject file must not spread them. */
const SECRET_COLUMNS = new Set(['accessToken', 'refreshToken']);

function toJsonSafe(row: Row): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(row)) {
    out[k] = SECRET_COLUMNS.has(k) && v !== null ? '[redacted]' : typeof v === 'bigint' ? v.toString() : v;
  }
  return out;
}

function rejectOf(spec: TableSpec, row: Row, p: Problem): RejectLine {
  return {
    table: spec.legacy,
    legacy_id: String(row.id),
    reason: p.problem,
    detail: p.detail,
    row: toJsonSafe(row),
  };
}

/** A batch of no rows: what ends a unit's batches. */
export function emptyBatch(): Batch {
  return {
    copy: Buffer.alloc(0),
    rows: 0,
    rejects: [],
    lastKey: null,
    hash: 0n,
    findings: {},
    days: [],
    minMs: null,
    readMs: 0,
    convertMs: 0,
  };
}

/**
 * Reads up to `limit` rows and converts each: a reject with its reason, or the row's COPY line
 * and its canonical text added to the batch's content hash. Runs in a conversion worker for
 * event tables (convert-worker.ts) and on the main thread for the small reference tables.
 */
export function buildBatch(
  spec: TableSpec,
  rows: Iterator<Row>,
  limit: number,
  ctx: ConvertContext,
  withCopy: boolean,
): Batch {
  const copy = new CopyBuffer();
  const b = emptyBatch();
  const hash = new ContentHash();
  let lastDay = Number.NaN;
  const days = new Set<number>();
  const encoder = new RowEncoder(spec.columns, withCopy);
  let n = 0;
  let lastId: unknown = null;
  // a row's notes count only once the row is imported
  const notes: Findings = {};
  const started = performance.now();
  let readMs = 0;
  while (n < limit && copy.length < MAX_BATCH_BYTES) {
    const r0 = performance.now();
    const next = rows.next();
    readMs += performance.now() - r0;
    if (next.done) break;
    const row = next.value;
    n++;
    lastId = row.id;
    if (spec.kind === 'event') {
      const ms = eventCreatedAt(row);
      const converted = isProblem(ms) ? ms : spec.convert(row, notes);
      if (isProblem(converted)) {
        moveNotes(notes, null);
        note(b.findings, converted.problem);
        b.rejects.push(rejectOf(spec, row, converted));
        continue;
      }
      const dated = dateFinding(ms as number, ctx.now);
      if (dated) note(notes, dated);
      moveNotes(notes, b.findings);
      const legacyId = Number(row.id);
      encoder.event(legacyEventId(spec.code, ms as number, legacyId), ms as number, legacyId, converted);
      const day = Math.floor((ms as number) / DAY);
      if (day !== lastDay) {
        lastDay = day;
        days.add(day);
      }
      if (b.minMs === null || (ms as number) < b.minMs) b.minMs = ms as number;
    } else {
      const converted = spec.convert(row, notes, ctx);
      if (isProblem(converted)) {
        moveNotes(notes, null);
        note(b.findings, converted.problem);
        b.rejects.push(rejectOf(spec, row, converted));
        continue;
      }
      moveNotes(notes, b.findings);
      encoder.row(converted);
    }
    b.rows++;
    hash.add(encoder.canonical);
    if (withCopy) copy.append(encoder.line);
  }
  if (lastId !== null) b.lastKey = String(lastId);
  b.hash = hash.value();
  b.copy = copy.bytes();
  b.days = [...days];
  b.readMs = readMs;
  b.convertMs = performance.now() - started - readMs;
  return b;
}
