import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createAuth, createMetricsRegistry, type ServiceInstance } from '@spywatcher/service';
import { createTestDatabase, type TestDatabase, testNatsUrl } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLegacyFixture } from '../../../tools/legacy-fixture/fixture.ts';
import { buildApp } from '../src/app.ts';

const WRITER = 'import-writer-0123456789';
const READER = 'import-reader-0123456789';
const auth = { authorization: `Bearer ${WRITER}` };

let db: TestDatabase;
let nats: NatsConnection;
let app: ServiceInstance;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl(), name: 'import-api-tests' });
  dir = mkdtempSync(join(tmpdir(), 'sw-import-api-'));
  writeLegacyFixture({ path: join(dir, 'legacy.sqlite'), rows: 200 });
  writeFileSync(join(dir, 'junk.db'), Buffer.alloc(2048, 1));
  app = await buildApp({
    sql: db.sql,
    nats,
    auth: createAuth([
      { name: 'importer', token: WRITER, scopes: ['imports:write'] },
      { name: 'reader', token: READER, scopes: ['ops:read'] },
    ]),
    metrics: createMetricsRegistry('migrator'),
    logger: false,
    importDir: dir,
  });
});

afterAll(async () => {
  await app.close();
  await nats.close();
  await db.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function waitFor(url: string) {
  for (let i = 0; i < 600; i++) {
    const res = await app.inject({ method: 'GET', url, headers: auth });
    const body = res.json();
    if (body.status === 'succeeded' || body.status === 'failed') return body;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`import ${url} did not finish`);
}

describe('POST /v1/imports', () => {
  it('runs an import as a job with progress and a verified report', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/imports',
      headers: auth,
      payload: { path: 'legacy.sqlite' },
    });
    expect(res.statusCode).toBe(202);
    const { id, url, status } = res.json();
    expect(status).toBe('queued');
    expect(url).toBe(`/v1/imports/${id}`);
    expect(res.headers.location).toBe(url);
    const run = await waitFor(url);
    expect(run.status).toBe('succeeded');
    expect(run.report.verified).toBe(true);
    expect(run.progress.MessageEvent.done).toBe(run.progress.MessageEvent.total);
    const [n] = await db.sql`select count(*)::int as n from message_events`;
    expect(n!.n).toBe(
      run.report.tables.find((t: { table: string }) => t.table === 'MessageEvent').totalImported,
    );

    const again = await app.inject({
      method: 'POST',
      url: '/v1/imports',
      headers: auth,
      payload: { path: 'legacy.sqlite', dryRun: true },
    });
    const dry = await waitFor(again.json().url);
    expect(dry.status).toBe('succeeded');
    expect(dry.dryRun).toBe(true);
  });

  it('records a failed job with a clear error for a file that is not SQLite', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/imports',
      headers: auth,
      payload: { path: 'junk.db' },
    });
    expect(res.statusCode).toBe(202);
    const run = await waitFor(res.json().url);
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/not an SQLite database/);
  });

  it('reads only inside IMPORT_DIR and needs the imports:write scope', async () => {
    const outside = await app.inject({
      method: 'POST',
      url: '/v1/imports',
      headers: auth,
      payload: { path: '../../etc/passwd' },
    });
    expect(outside.statusCode).toBe(400);
    expect(outside.json().error.message).toMatch(/outside the import directory|no file/);
    const missing = await app.inject({
      method: 'POST',
      url: '/v1/imports',
      headers: auth,
      payload: { path: 'nope.db' },
    });
    expect(missing.statusCode).toBe(400);
    const anonymous = await app.inject({
      method: 'POST',
      url: '/v1/imports',
      payload: { path: 'legacy.sqlite' },
    });
    expect(anonymous.statusCode).toBe(401);
    const reader = await app.inject({
      method: 'POST',
      url: '/v1/imports',
      headers: { authorization: `Bearer ${READER}` },
      payload: { path: 'legacy.sqlite' },
    });
    expect(reader.statusCode).toBe(403);
    const unknown = await app.inject({
      method: 'GET',
      url: '/v1/imports/00000000-0000-4000-8000-000000000000',
      headers: auth,
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('NOT_FOUND');
  });
});
