import type { Fragment, Queryable } from '@spywatcher/db';

/** `a and b and c`; `true` for none. Every piece is a tagged-template fragment. */
export function and(sql: Queryable, parts: Fragment[]): Fragment {
  if (parts.length === 0) return sql`true`;
  return parts.reduce((acc, p) => sql`${acc} and ${p}`);
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
