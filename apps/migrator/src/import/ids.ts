import { createHash } from 'node:crypto';

/**
 * Event ids of imported rows are UUIDv7-shaped and derived, not random: the 48-bit time is
 * the legacy createdAt, rand_a holds the table's code and the marker 0x5c, and the 62-bit
 * tail is the legacy integer id. So an id is the same on every run (a re-run or a resume
 * can never store a row twice), stays time-ordered for the B-tree, and the legacy id can be
 * read back from it (`legacyIdOfEventId`). Publishers' random UUIDv7s cannot collide with
 * two imported rows of the same table, and a collision with a random id would need the same
 * millisecond and 74 matching random bits.
 */
export function legacyEventId(tableCode: number, occurredAtMs: number, legacyId: number): string {
  // The usual case without a string per hex group (the import makes one id per row): both
  // numbers fit 48 bits, so each is two 24-bit halves of three bytes.
  if (isUint48(occurredAtMs) && isUint48(legacyId) && tableCode >= 0 && tableCode < 16) {
    const tHi = Math.floor(occurredAtMs / 0x1000000);
    const tLo = occurredAtMs - tHi * 0x1000000;
    const iHi = Math.floor(legacyId / 0x1000000);
    const iLo = legacyId - iHi * 0x1000000;
    return `${hex6(tHi)}${HEX[tLo >>> 16]}-${HEX[(tLo >>> 8) & 0xff]}${HEX[tLo & 0xff]}-7${HEX[tableCode]![1]}5c-8000-${hex6(iHi)}${hex6(iLo)}`;
  }
  const t = occurredAtMs.toString(16).padStart(12, '0');
  const tail = legacyId.toString(16).padStart(15, '0');
  return `${t.slice(0, 8)}-${t.slice(8, 12)}-7${tableCode.toString(16)}5c-8${tail.slice(0, 3)}-${tail.slice(3)}`;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const hex6 = (x: number) => `${HEX[x >>> 16]}${HEX[(x >>> 8) & 0xff]}${HEX[x & 0xff]}`;
const isUint48 = (x: number) => Number.isInteger(x) && x >= 0 && x < 2 ** 48;

/** The legacy integer id carried by an id made by `legacyEventId`. */
export function legacyIdOfEventId(id: string): number {
  const hex = id.replace(/-/g, '');
  return Number.parseInt(hex.slice(17), 16);
}

const NAMESPACE = Buffer.from('6f2c1a7e5b3d4c8e9a0b1c2d3e4f5a6b', 'hex');

/** RFC 9562 UUIDv5 of `name` in the importer's namespace: ids for reference-table rows. */
export function uuidv5(name: string): string {
  const h = createHash('sha1').update(NAMESPACE).update(name, 'utf8').digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.toString('hex', 0, 16);
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}
