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

function escapeText(text: string): string {
  return text.replace(/[\\\n\r\t]/g, (c) => ESCAPES[c]!);
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
  if (typeof value === 'string') return escapeText(value);
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (value instanceof Date) return value.toISOString();
  // An array of scalars is a PostgreSQL array; one holding objects can only be jsonb. A jsonb
  // array of scalars is ambiguous: pass it as a JSON string (JSON.stringify) instead.
  if (Array.isArray(value) && !value.some((v) => v !== null && typeof v === 'object')) {
    return escapeText(arrayLiteral(value));
  }
  return escapeText(JSON.stringify(value));
}

/** Encodes rows (arrays of field values in column order) as COPY text lines. */
export function encodeCopyRows(rows: Iterable<readonly CopyValue[]>): string {
  let out = '';
  for (const row of rows) {
    out += row.map(encodeCopyField).join('\t');
    out += '\n';
  }
  return out;
}

/**
 * COPYs rows into `table` (an identifier chosen by our code, never by a caller's input)
 * in chunks so a large batch never sits in memory as one string.
 */
export async function copyRows(
  sql: Queryable,
  table: string,
  columns: readonly string[],
  rows: Iterable<readonly CopyValue[]> | AsyncIterable<readonly CopyValue[]>,
  chunkRows = 2000,
): Promise<void> {
  const writable = await sql`copy ${sql(table)} (${sql(columns as string[])}) from stdin`.writable();
  if (Array.isArray(rows) && rows.length <= chunkRows) {
    // One chunk goes straight into the COPY stream: a pipeline over a one-item Readable cost
    // more node CPU than the write itself and several event-loop turns per statement.
    writable.end(encodeCopyRows(rows as readonly (readonly CopyValue[])[]));
    await finished(writable);
    return;
  }
  async function* chunks() {
    let batch: (readonly CopyValue[])[] = [];
    for await (const row of rows as AsyncIterable<readonly CopyValue[]>) {
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
 * Appends rows with `ON CONFLICT DO NOTHING`, going through a temporary staging table
 * filled by COPY so any batch size and any column type (arrays, jsonb) takes one round trip
 * per step. Must run inside a transaction (the staging table is dropped on commit).
 * Returns the `returning` column of the rows that were new.
 */
export async function appendRows(tx: Queryable, options: AppendOptions): Promise<string[]> {
  if (options.rows.length === 0) return [];
  const target = tx(options.table);
  const cols = tx(options.columns as string[]);
  const stagingName = `_stage_${options.table}`;
  const staging = tx(stagingName);
  await tx`create temp table if not exists ${staging} (like ${target} including defaults) on commit drop`;
  await tx`truncate ${staging}`;
  await copyRows(tx, stagingName, options.columns, options.rows);
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
