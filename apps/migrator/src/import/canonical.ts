import type { Column } from './tables.ts';

/**
 * The canonical form both sides hash for verification: fields joined by U+001F, a nullable
 * field prefixed with 'v' or written as 'n', times as epoch milliseconds, arrays as
 * `<count>:<items joined by U+001E>`, booleans as true/false, inet in PostgreSQL's output
 * form. A table's hash is the sum of each row's 64-bit hash (signed), so it does not depend
 * on row order and can be accumulated batch by batch in the checkpoint. The import builds the
 * text of a source row in encode.ts (RowEncoder), the server that of a stored row with
 * `canonicalSql` below.
 *
 * The row hash is PostgreSQL's own `hashtextextended(canonical, 0)` (Bob Jenkins' lookup3 over
 * the UTF-8 bytes, src/common/hashfn.c), computed here in JavaScript: an md5 per row cost the
 * import ~2 µs of its single thread and verification ~2 µs of server time a row, while
 * lookup3 costs ~0.15 µs here and detects a changed row just as well (it is a checksum, not a
 * defence against forged rows). `hashProbe` lets verification confirm that the server computes
 * the same function (it does on every little-endian machine).
 */
const rot = (x: number, k: number) => (x << k) | (x >>> (32 - k));

/** Sums the row hashes of a batch: two float sums stay exact for 2^20 rows, then `value()`. */
export class ContentHash {
  private hi = 0;
  private lo = 0;
  private rows = 0;
  private bytes = new Uint8Array(4096);
  private readonly encoder = new TextEncoder();

  add(canonical: string): void {
    // UTF-16 to UTF-8 at most triples the length
    if (canonical.length * 3 > this.bytes.length) this.bytes = new Uint8Array(canonical.length * 3);
    const k = this.bytes;
    const len = this.encoder.encodeInto(canonical, k).written;
    // hash_bytes_extended, seed 0, little-endian words: the same value on any platform here
    let a = (0x9e3779b9 + len + 3923095) | 0;
    let b = a;
    let c = a;
    let i = 0;
    let n = len;
    while (n >= 12) {
      a = (a + (k[i]! | (k[i + 1]! << 8) | (k[i + 2]! << 16) | (k[i + 3]! << 24))) | 0;
      b = (b + (k[i + 4]! | (k[i + 5]! << 8) | (k[i + 6]! << 16) | (k[i + 7]! << 24))) | 0;
      c = (c + (k[i + 8]! | (k[i + 9]! << 8) | (k[i + 10]! << 16) | (k[i + 11]! << 24))) | 0;
      a = (a - c) ^ rot(c, 4);
      c = (c + b) | 0;
      b = (b - a) ^ rot(a, 6);
      a = (a + c) | 0;
      c = (c - b) ^ rot(b, 8);
      b = (b + a) | 0;
      a = (a - c) ^ rot(c, 16);
      c = (c + b) | 0;
      b = (b - a) ^ rot(a, 19);
      a = (a + c) | 0;
      c = (c - b) ^ rot(b, 4);
      b = (b + a) | 0;
      i += 12;
      n -= 12;
    }
    // the last 11 bytes; the lowest byte of c is left out, as in PostgreSQL
    if (n >= 11) c = (c + (k[i + 10]! << 24)) | 0;
    if (n >= 10) c = (c + (k[i + 9]! << 16)) | 0;
    if (n >= 9) c = (c + (k[i + 8]! << 8)) | 0;
    if (n >= 8) b = (b + (k[i + 7]! << 24)) | 0;
    if (n >= 7) b = (b + (k[i + 6]! << 16)) | 0;
    if (n >= 6) b = (b + (k[i + 5]! << 8)) | 0;
    if (n >= 5) b = (b + k[i + 4]!) | 0;
    if (n >= 4) a = (a + (k[i + 3]! << 24)) | 0;
    if (n >= 3) a = (a + (k[i + 2]! << 16)) | 0;
    if (n >= 2) a = (a + (k[i + 1]! << 8)) | 0;
    if (n >= 1) a = (a + k[i]!) | 0;
    c = (c ^ b) - rot(b, 14);
    a = (a ^ c) - rot(c, 11);
    b = (b ^ a) - rot(a, 25);
    c = (c ^ b) - rot(b, 16);
    a = (a ^ c) - rot(c, 4);
    b = (b ^ a) - rot(a, 14);
    c = (c ^ b) - rot(b, 24);
    // the signed 64-bit value is (b as int32) * 2^32 + (c as uint32)
    this.hi += b | 0;
    this.lo += c >>> 0;
    if (++this.rows === 1 << 20) this.fold();
  }

  private folded = 0n;
  private fold(): void {
    this.folded += (BigInt(this.hi) << 32n) + BigInt(this.lo);
    this.hi = 0;
    this.lo = 0;
    this.rows = 0;
  }

  /** The sum of the row hashes added so far. */
  value(): bigint {
    this.fold();
    return this.folded;
  }
}

/** A string and its hash, to check that the server's `hashtextextended` is the function above. */
export function hashProbe(): { text: string; hash: bigint } {
  const text = 'SpyWatcher \x1f café 🎉 probe';
  const h = new ContentHash();
  h.add(text);
  return { text, hash: h.value() };
}

function columnSql(column: Column): string {
  const ref = column.verify || `t.${column.name}`;
  let e: string;
  switch (column.kind) {
    case 'ts':
      // float8 epoch seconds hold every millisecond of 2000-2100 exactly enough to round back
      // to it, and cost half of extract()'s numeric arithmetic
      e = `(date_part('epoch', ${ref}) * 1000)::bigint::text`;
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
  return `coalesce(sum(hashtextextended(${canon}, 0)), 0)::text`;
}
