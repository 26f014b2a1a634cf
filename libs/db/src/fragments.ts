import type postgres from 'postgres';
import type { Queryable } from './client.ts';

/** A piece of SQL built with a postgres.js tagged template: text and parameters together. */
export type Fragment = postgres.Fragment;

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

/** Identifiers (`sql(name)` each) as a comma-separated list, e.g. a column list. */
export const identifiers = (sql: Queryable, names: readonly string[]): Fragment =>
  join(
    sql,
    names.map((n) => sql(n)),
  );
