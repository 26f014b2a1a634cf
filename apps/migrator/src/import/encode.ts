import { encodeCopyField } from '@spywatcher/db';
import type { Column } from './tables.ts';

/**
 * The two texts the import makes of every converted row, in one pass over its fields: the line
 * for COPY (text format) and the canonical form hashed for verification (canonical.ts describes
 * it; PostgreSQL builds the same text from the stored row). The import's own CPU bounds its
 * speed, so this avoids what the generic helpers cost per row: intermediate arrays, a Date and
 * toISOString per timestamp, a regex replace on text that holds nothing to escape.
 */
const FS = '\x1f';
const RS = '\x1e';
const DAY = 86_400_000;
/** Years 0000-9999, where toISOString has its plain `YYYY-MM-DDTHH:MM:SS.mmmZ` shape. */
const ISO_MAX_MS = 253_402_300_800_000;
const NEEDS_ESCAPE = /[\\\n\r\t]/;
const TWO = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, '0'));
const THREE = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));

/** `new Date(ms).toISOString()`, building the date part once per day (rows come roughly in time order). */
export class IsoTimes {
  private day = Number.NaN;
  private prefix = '';

  of(ms: number): string {
    if (!(ms >= 0 && ms < ISO_MAX_MS) || !Number.isInteger(ms)) return new Date(ms).toISOString();
    const day = Math.floor(ms / DAY);
    if (day !== this.day) {
      this.day = day;
      this.prefix = new Date(day * DAY).toISOString().slice(0, 11);
    }
    let t = ms - day * DAY;
    const milli = t % 1000;
    t = (t - milli) / 1000;
    const s = t % 60;
    t = (t - s) / 60;
    const m = t % 60;
    return `${this.prefix}${TWO[(t - m) / 60]}:${TWO[m]}:${TWO[s]}.${THREE[milli]}Z`;
  }
}

export const copyText = (s: string): string => (NEEDS_ESCAPE.test(s) ? encodeCopyField(s) : s);

/**
 * Encodes rows of one table. After `event()` or `row()`, `canonical` holds the row's canonical
 * text and `line` its COPY line (with the newline; '' unless COPY lines were asked for).
 */
export class RowEncoder {
  canonical = '';
  line = '';
  private readonly columns: readonly Column[];
  private readonly withCopy: boolean;
  private readonly times = new IsoTimes();

  constructor(columns: readonly Column[], withCopy: boolean) {
    this.columns = columns;
    this.withCopy = withCopy;
  }

  /** An event row: the common head (id, occurred_at, metadata with the legacy id), then `values`. */
  event(id: string, ms: number, legacyId: number, values: readonly unknown[]): void {
    this.canonical = `${id}${FS}${ms}${FS}${legacyId}`;
    this.line = this.withCopy ? `${id}\t${this.times.of(ms)}\t{"legacy_id": ${legacyId}}` : '';
    this.fields(values, true);
  }

  /** A row of `values` only (reference tables). */
  row(values: readonly unknown[]): void {
    this.canonical = '';
    this.line = '';
    this.fields(values, false);
  }

  private fields(values: readonly unknown[], afterHead: boolean): void {
    const withCopy = this.withCopy;
    let canonical = this.canonical;
    let line = this.line;
    let first = !afterHead;
    let firstCanonical = !afterHead;
    for (let i = 0; i < this.columns.length; i++) {
      const c = this.columns[i]!;
      const v = values[i];
      let text: string;
      let copy: string;
      if (v === null || v === undefined) {
        text = 'n';
        copy = '\\N';
      } else {
        switch (c.kind) {
          case 'arr':
            text = `${(v as string[]).length}:${(v as string[]).join(RS)}`;
            copy = withCopy ? encodeCopyField(v as string[]) : '';
            break;
          case 'bool':
            text = v ? 'true' : 'false';
            copy = v ? 't' : 'f';
            break;
          case 'ts':
            text = String(v);
            copy = withCopy ? this.times.of(v as number) : '';
            break;
          default:
            text = typeof v === 'string' ? v : String(v);
            copy = withCopy ? copyText(text) : '';
        }
        if (c.nullable) text = `v${text}`;
      }
      if (withCopy) {
        line = first ? copy : `${line}\t${copy}`;
        first = false;
      }
      if (c.verify !== false) {
        canonical = firstCanonical ? text : `${canonical}${FS}${text}`;
        firstCanonical = false;
      }
    }
    this.canonical = canonical;
    this.line = withCopy ? `${line}\n` : '';
  }
}
