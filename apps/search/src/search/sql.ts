import type { Queryable } from '@spywatcher/db';
import type postgres from 'postgres';

export type Fragment = postgres.Fragment;

/** `a and b and c`; `true` for none. Every piece is a tagged-template fragment. */
export function and(sql: Queryable, parts: Fragment[]): Fragment {
  if (parts.length === 0) return sql`true`;
  return parts.reduce((acc, p) => sql`${acc} and ${p}`);
}

/**
 * The parts (fragments or identifiers, `sql(name)`) one after another with `separator` between
 * them (`, ` for a list).
 */
export function join(
  sql: Queryable,
  parts: readonly (Fragment | postgres.Helper<string, []>)[],
  separator: Fragment = sql`, `,
): Fragment {
  // postgres.js joins an array of fragments (only fragments) with spaces, so each part is one;
  // an empty array would be sent as a parameter.
  if (parts.length === 0) return sql``;
  return sql`${parts.flatMap((p, i) => (i === 0 ? [sql`${p}`] : [separator, sql`${p}`]))}`;
}

/** occurred_at as exact text (microseconds, UTC) for cursors and responses. */
export const timeText = (sql: Queryable, column: Fragment) =>
  sql`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** HTML-escapes text; snippets mark matches with <mark> and must be safe to render. */
export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

/** Private-use characters that ts_headline puts around matches; replaced after escaping. */
export const MARK_START = '\uE000';
export const MARK_STOP = '\uE001';

export function snippetHtml(headline: string): string {
  return escapeHtml(headline).replaceAll(MARK_START, '<mark>').replaceAll(MARK_STOP, '</mark>');
}
