import type postgres from 'postgres';
import type { Queryable } from './client.ts';

/**
 * A jsonb parameter for any value `JSON.stringify` writes. postgres.js types `sql.json` with a
 * JSONValue that refuses interfaces (they have no index signature) and `unknown`, which is what our
 * typed records are; this is the one place that widens it, so callers need no cast.
 */
export function jsonb(sql: Queryable, value: unknown): postgres.Parameter {
  return sql.json(value as postgres.JSONValue);
}
