import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import type { Queryable } from './client.ts';

/** A value that can be written in PostgreSQL's COPY text format. */
export type CopyValue =
  | string
  | number
  | bigint
  | boolean
  | Date
  | null
  | undefined
  | readonly string[]
  | object;

const ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
const NEEDS_ESCAPE = /[\\\n\r\t]/;

/** Text as a COPY field: backslash, newline, carriage return and tab escaped (most text has none). */
export function escapeCopyText(text: string): string {
  return NEEDS_ESCAPE.test(text) ? text.replace(/[\\\n\r\t]/g, (c) => ESCAPES[c]!) : text;
}

/** Array literal for text[] (or int[]): every element double-quoted so commas, braces and NULL are data. */
function arrayLiteral(values: readonly unknown[]): string {
  const items = values.map((v) =>
    v === null || v === undefined ? 'NULL' : `"${String(v).replace(/["\\]/g, (c) => `\\${c}`)}"`,
  );
  return `{${items.join(',')}}`;
}

/** Encodes one field for COPY ... FROM STDIN (text format). */
export function encodeCopyField(value: CopyValue): string {
  if (value === null || value === undefined) return '\\N';
  if (typeof value === 'string') return escapeCopyText(value);
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (value instanceof Date) return value.toISOString();
  // An array of scalars is a PostgreSQL array; one holding objects can only be jsonb. A jsonb
  // array of scalars is ambiguous: pass it as a JSON string (JSON.stringify) instead.
  if (Array.isArray(value) && !value.some((v) => v !== null && typeof v === 'object')) {
    return escapeCopyText(arrayLiteral(value));
  }
  return escapeCopyText(JSON.stringify(value));
}

/** Encodes one row (field values in column order) as a COPY text line, newline included. */
export function encodeCopyRow(row: readonly CopyValue[]): string {
  let line = '';
  for (let i = 0; i < row.length; i++) {
    if (i > 0) line += '\t';
    line += encodeCopyField(row[i]);
  }
  return `${line}\n`;
}

/** Encodes rows (arrays of field values in column order) as COPY text lines. */
export function encodeCopyRows(rows: Iterable<readonly CopyValue[]>): string {
  let out = '';
  for (const row of rows) out += encodeCopyRow(row);
  return out;
}

/**
 * A batch's COPY lines as UTF-8 in one buffer, each line written as it is made: cheaper than
 * concatenating thousands of lines into one string that the driver converts at the end (which
 * flattens the concatenation, and all of it to two bytes a character once one line has a
 * character beyond Latin-1). Used by copyRows and by callers that encode their own lines.
 */
export class CopyBuffer {
  length = 0;
  /** Allocated at the first line (a dry run makes none). */
  private buffer = Buffer.alloc(0);

  append(line: string): void {
    // a UTF-16 code unit takes at most three bytes in UTF-8
    const room = line.length * 3;
    if (this.length + room > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + room, 1 << 16));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    this.length += this.buffer.write(line, this.length);
  }

  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

/**
 * What a COPY reads: rows of values (encoded here), or COPY text already encoded by the caller
 * (lines ending in a newline, as a string or UTF-8 bytes), as a bulk loader that builds its
 * lines while converting makes it.
 */
export type CopySource =
  | string
  | Uint8Array
  | Iterable<readonly CopyValue[]>
  | AsyncIterable<readonly CopyValue[]>;

/**
 * The one way rows are COPYed into a table (`table`, an identifier chosen by our code, never by
 * a caller's input): encoded text is written as it is; rows are encoded in chunks so a large
 * batch never sits in memory as one string.
 */
export async function copyRows(
  sql: Queryable,
  table: string,
  columns: readonly string[],
  source: CopySource,
  chunkRows = 2000,
): Promise<void> {
  const writable = await sql`copy ${sql(table)} (${sql(columns as string[])}) from stdin`.writable();
  if (typeof source === 'string' || source instanceof Uint8Array) {
    writable.end(source);
    await finished(writable);
    return;
  }
  if (Array.isArray(source) && source.length <= chunkRows) {
    // One chunk goes straight into the COPY stream: a pipeline over a one-item Readable cost
    // more node CPU than the write itself and several event-loop turns per statement.
    const bytes = new CopyBuffer();
    for (const row of source as readonly (readonly CopyValue[])[]) bytes.append(encodeCopyRow(row));
    writable.end(bytes.bytes());
    await finished(writable);
    return;
  }
  async function* chunks() {
    let batch: (readonly CopyValue[])[] = [];
    for await (const row of source as AsyncIterable<readonly CopyValue[]>) {
      batch.push(row);
      if (batch.length >= chunkRows) {
        yield encodeCopyRows(batch);
        batch = [];
      }
    }
    if (batch.length > 0) yield encodeCopyRows(batch);
  }
  await pipeline(Readable.from(chunks()), writable);
}

/** The columns of a staging table: those of an existing table, or each with its type. */
export type StagingShape = { like: string } | { columns: readonly { name: string; type: string }[] };

/**
 * COPYs rows into the temporary table `name` (created at its first use in a transaction, emptied
 * before each batch, dropped at commit), for an insert ... select that needs more than COPY: ON
 * CONFLICT, a join, RETURNING. Must run inside a transaction. `name` and the types are chosen by
 * our code, never by a caller's input.
 */
export async function stageRows(
  tx: Queryable,
  name: string,
  shape: StagingShape,
  columns: readonly string[],
  source: CopySource,
): Promise<void> {
  const staging = tx(name);
  if ('like' in shape) {
    await tx`create temp table if not exists ${staging} (like ${tx(shape.like)} including defaults) on commit drop`;
  } else {
    // A type name is SQL, not an identifier (`text[]`, `integer`): our own, given as a fragment.
    const definitions = shape.columns.map((c, i) =>
      i === 0 ? tx`${tx(c.name)} ${tx.unsafe(c.type)}` : tx`, ${tx(c.name)} ${tx.unsafe(c.type)}`,
    );
    await tx`create temp table if not exists ${staging} (${definitions}) on commit drop`;
  }
  await tx`truncate ${staging}`;
  await copyRows(tx, name, columns, source);
}

export interface AppendOptions {
  /** Target table (trusted identifier). */
  table: string;
  /** Columns given for every row, in order. */
  columns: readonly string[];
  rows: readonly (readonly CopyValue[])[];
  /** Column returned for each row actually inserted (e.g. `id`). */
  returning?: string;
}

/**
 * Appends rows with `ON CONFLICT DO NOTHING`, through a staging table filled by COPY
 * (`stageRows`) so any batch size and any column type (arrays, jsonb) takes one round trip per
 * step. Must run inside a transaction. Returns the `returning` column of the rows that were new.
 */
export async function appendRows(tx: Queryable, options: AppendOptions): Promise<string[]> {
  if (options.rows.length === 0) return [];
  const target = tx(options.table);
  const cols = tx(options.columns as string[]);
  const stagingName = `_stage_${options.table}`;
  const staging = tx(stagingName);
  await stageRows(tx, stagingName, { like: options.table }, options.columns, options.rows);
  if (!options.returning) {
    await tx`insert into ${target} (${cols}) select ${cols} from ${staging} on conflict do nothing`;
    return [];
  }
  const inserted = await tx<{ value: string }[]>`
    insert into ${target} (${cols}) select ${cols} from ${staging} on conflict do nothing
    returning ${tx(options.returning)}::text as value
  `;
  return inserted.map((r) => r.value);
}
