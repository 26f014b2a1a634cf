import { randomBytes } from 'node:crypto';
import { createSql, databaseNameOf, type Sql, withDatabase } from '@spywatcher/db';
import { inject } from 'vitest';
import { createEmptyDatabase } from './template.ts';
import './provided.ts';

export { collectOutput } from './output.ts';
export { createEmptyDatabase, createTemplateDatabase } from './template.ts';
export { recordUncaught, type UncaughtRecorder } from './uncaught.ts';

export interface TestDatabase {
  /** Connection string of this file's own database. */
  url: string;
  name: string;
  /** A pool on it (closed by `drop`). */
  sql: Sql;
  /** Closes the pool and drops the database. */
  drop: () => Promise<void>;
}

/**
 * A fresh database for one test file, cloned from the migrated template (a file copy on the
 * server, much faster than migrating again), so files run in parallel on clean data.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const templateUrl = inject('templateDatabaseUrl');
  const adminUrl = withDatabase(templateUrl, 'postgres');
  const db = await createEmptyDatabase(adminUrl, 'sw_test', databaseNameOf(templateUrl));
  const sql = createSql({ url: db.url, applicationName: 'spywatcher-tests', max: 5 });
  return {
    url: db.url,
    name: db.name,
    sql,
    drop: async () => {
      await sql.end({ timeout: 5 });
      await db.drop();
    },
  };
}

/** The server-level URL (the `postgres` database) for tests that create databases themselves. */
export function adminDatabaseUrl(): string {
  return withDatabase(inject('templateDatabaseUrl'), 'postgres');
}

export function testNatsUrl(): string {
  return inject('natsUrl');
}

/** Unique NATS stream and subject prefix for one test file. */
export function testNatsNames(label = 't'): { prefix: string; stream: string } {
  const suffix = `${label}${randomBytes(4).toString('hex')}`;
  return { prefix: `sw${suffix}`, stream: `SW_${suffix.toUpperCase()}` };
}

/** A URL on which nothing listens, for "dependency down" tests. */
export const UNREACHABLE_DATABASE_URL = 'postgres://postgres@127.0.0.1:1/nowhere';
export const UNREACHABLE_NATS_URL = 'nats://127.0.0.1:1';
