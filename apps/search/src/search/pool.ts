import { createSql, type Sql } from '@spywatcher/db';
import { env } from '@spywatcher/service';

/** The search service's own variables (see apps/search/README.md, "Settings"). */
export const searchEnv = {
  SEARCH_DATABASE_URL: env.custom<string>(
    'PostgreSQL for search reads (e.g. a streaming replica); empty = DATABASE_URL',
    '',
    (raw, name) => {
      try {
        const u = new URL(raw);
        if (u.protocol === 'postgres:' || u.protocol === 'postgresql:') return raw;
      } catch {
        // fall through
      }
      throw new Error(`${name} must be a postgres:// URL`);
    },
    true,
  ),
  SEARCH_REPLICA_MAX_LAG_MS: env.int(
    'Replay lag of the SEARCH_DATABASE_URL replica above which /ready answers 503 (its reads are that stale)',
    30_000,
    { min: 1 },
  ),
  SEARCH_DATABASE_POOL_MAX: env.int('Connections in the search read pool', 10, { min: 1, max: 500 }),
  SEARCH_STATEMENT_TIMEOUT_MS: env.int('Statement timeout of search reads (0 = none)', 10_000, { min: 0 }),
};

/**
 * The pool search reads go through. It never uses named prepared statements: an unnamed
 * statement is planned with the actual parameters every time, so the planner sees the real word
 * (and its frequency) and picks the newest-first index walk for a common word and the text index
 * for a rare one. A cached generic plan would use one plan for every word.
 */
export function createSearchSql(config: {
  SEARCH_DATABASE_URL: string;
  DATABASE_URL: string;
  SEARCH_DATABASE_POOL_MAX: number;
  SEARCH_STATEMENT_TIMEOUT_MS: number;
}): Sql {
  return createSql({
    url: config.SEARCH_DATABASE_URL || config.DATABASE_URL,
    applicationName: 'spywatcher-search-reads',
    max: config.SEARCH_DATABASE_POOL_MAX,
    statementTimeoutMs: config.SEARCH_STATEMENT_TIMEOUT_MS,
    pgbouncer: true,
  });
}
