import { createHash } from 'node:crypto';
import type { Column } from './tables.ts';

/**
 * The canonical form both sides hash for verification: fields joined by U+001F, a nullable
 * field prefixed with 'v' or written as 'n', times as epoch milliseconds, arrays as
 * `<count>:<items joined by U+001E>`, booleans as true/false, inet in PostgreSQL's output
 * form. A table's hash is the sum of the first 64 bits (signed) of each row's md5, so it
 * does not depend on row order and can be accumulated batch by batch in the checkpoint.
 */
const FS = '\x1f';
const RS = '\x1e';

export function canonicalField(column: Column, value: unknown): string {
  if (value === null || value === undefined) return 'n';
  let s: string;
  switch (column.kind) {
    case 'arr':
      s = `${(value as string[]).length}:${(value as string[]).join(RS)}`;
      break;
    case 'bool':
      s = value ? 'true' : 'false';
      break;
    default:
      s = String(value);
  }
  return column.nullable ? `v${s}` : s;
}

export function rowHash(canonical: string): bigint {
  return createHash('md5').update(canonical, 'utf8').digest().readBigInt64BE(0);
}

function columnSql(column: Column): string {
  const ref = column.verify || `t.${column.name}`;
  let e: string;
  switch (column.kind) {
    case 'ts':
      e = `(extract(epoch from ${ref}) * 1000)::bigint::text`;
      break;
    case 'arr':
      e = `cardinality(${ref})::text || ':' || array_to_string(${ref}, E'\\x1e')`;
      break;
    case 'inet':
      // inet::text always appends /32 or /128; the output function (used by format) does not.
      e = `case when ${ref} is not null then format('%s', ${ref}) end`;
      break;
    default:
      e = `${ref}::text`;
  }
  return column.nullable ? `coalesce('v' || ${e}, 'n')` : e;
}

/** SQL for the canonical text of a stored row (identifiers come from our table specs). */
export function canonicalSql(columns: readonly Column[]): string {
  const parts = columns.filter((c) => c.verify !== false).map(columnSql);
  return `concat_ws(E'\\x1f', ${parts.join(', ')})`;
}

/** SQL for the table-level hash over canonical expression `canon`. */
export function hashSumSql(canon: string): string {
  return `coalesce(sum(('x' || left(md5(${canon}), 16))::bit(64)::bigint::numeric), 0)::text`;
}

export function canonicalRow(columns: readonly Column[], values: readonly unknown[]): string {
  const parts: string[] = [];
  for (let i = 0; i < columns.length; i++) {
    const c = columns[i]!;
    if (c.verify !== false) parts.push(canonicalField(c, values[i]));
  }
  return parts.join(FS);
}
