import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createSql, databaseNameOf, withDatabase } from '@spywatcher/db';
import { commonEnv } from '@spywatcher/service';
import { adminDatabaseUrl } from '@spywatcher/testing';
import { describe, expect, it } from 'vitest';
import { StartFailure } from './failure.ts';
import { ownDatabaseUrl, resolvePostgres } from './postgres.ts';
import { readSettings } from './settings.ts';

const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('npm start settings', () => {
  it('by default tries the local servers and uses a database of its own, spywatcher, never postgres', () => {
    const s = readSettings([], { PATH: '/usr/bin' }, root);
    expect(s).toMatchObject({
      fresh: false,
      databaseUrl: undefined,
      natsUrl: undefined,
      probeDatabaseUrl: 'postgres://postgres@127.0.0.1:5432/postgres',
      probeNatsUrl: 'nats://127.0.0.1:4222',
      database: 'spywatcher',
      dataDir: `${root}.data`,
      dataDirShown: '.data',
      docker: true,
      ports: { ingest: 3001, search: 3002, migrator: 3003, ops: 3004 },
    });
    expect(ownDatabaseUrl(s.probeDatabaseUrl, s)).toBe('postgres://postgres@127.0.0.1:5432/spywatcher');
    // A service started on its own has the same default.
    expect(databaseNameOf(commonEnv.DATABASE_URL.default!)).toBe('spywatcher');
  });

  it('takes --fresh, the user’s URLs and ports, and refuses bad values with a two-line failure', () => {
    const s = readSettings(
      ['--fresh'],
      { DATABASE_URL: 'postgres://me@db:5432/postgres', NATS_URL: 'nats://n:4222', SEARCH_PORT: '4002' },
      root,
    );
    expect(s).toMatchObject({
      fresh: true,
      databaseUrl: 'postgres://me@db:5432/postgres',
      natsUrl: 'nats://n:4222',
      ports: { search: 4002 },
    });
    expect(() => readSettings([], { OPS_PORT: 'eighty' }, root)).toThrow(StartFailure);
    expect(() => readSettings([], { DATABASE_URL: 'mysql://x' }, root)).toThrow(
      /DATABASE_URL must be a postgres:\/\/ URL/,
    );
    expect(() => readSettings(['--frseh'], {}, root)).toThrow(StartFailure);
  });
});

describe('npm start with a local PostgreSQL', () => {
  it('creates its database when missing and uses it; --fresh drops and recreates it', async () => {
    const database = `sw_test_start_${randomBytes(4).toString('hex')}`;
    const env = { START_PROBE_DATABASE_URL: adminDatabaseUrl(), START_DATABASE: database };
    const expected = withDatabase(adminDatabaseUrl(), database);
    const admin = createSql({ url: adminDatabaseUrl(), applicationName: 'spywatcher-tests', max: 1 });
    try {
      const first = await resolvePostgres(readSettings([], env, root));
      expect(first).toMatchObject({ url: expected, how: 'the local PostgreSQL', stop: undefined });
      const sql = createSql({ url: first.url, applicationName: 'spywatcher-tests', max: 1 });
      await sql`create table marker (id int)`;
      await sql.end();

      const again = await resolvePostgres(readSettings([], env, root));
      const kept = createSql({ url: again.url, applicationName: 'spywatcher-tests', max: 1 });
      expect(await kept`select 1 from pg_tables where tablename = 'marker'`).toHaveLength(1);
      await kept.end();

      const fresh = await resolvePostgres(readSettings(['--fresh'], env, root));
      const clean = createSql({ url: fresh.url, applicationName: 'spywatcher-tests', max: 1 });
      expect(await clean`select 1 from pg_tables where tablename = 'marker'`).toHaveLength(0);
      await clean.end();
    } finally {
      await admin`drop database if exists ${admin(database)} with (force)`;
      await admin.end();
    }
  });
});
