/**
 * `"name"` for an identifier that must appear in SQL text (a statement shown to an operator or
 * recorded in a report). Queries use postgres.js's `sql(name)` instead, which also splits on dots.
 */
export function quoteIdent(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}
