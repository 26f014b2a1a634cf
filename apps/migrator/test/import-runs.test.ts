import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createAuth, createMetricsRegistry, type ServiceInstance } from '@spywatcher/service';
import { createTestDatabase, type TestDatabase, testNatsUrl } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLegacyFixture } from '../../../tools/legacy-fixture/fixture.ts';
import { buildApp } from '../src/app.ts';

const WRITER = 'import-runs-writer-0123456789';
const auth = { authorization: `Bearer ${WRITER}` };

let db: TestDatabase;
let nats: NatsConnection;
let app: ServiceInstance;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl(), name: 'import-runs-tests' });
  dir = mkdtempSync(join(tmpdir(), 'sw-import-runs-'));
  writeLegacyFixture({ path: join(dir, 'legacy.sqlite'), rows: 200 });
  app = await buildApp({
    sql: db.sql,
    nats,
    auth: createAuth([{ name: 'importer', token: WRITER, scopes: ['imports:write'] }]),
    metrics: createMetricsRegistry('migrator'),
    logger: false,
    importDir: dir,
    importJobs: { heartbeatMs: 100, abandonAfterMs: 60_000 },
  });
  await app.ready();
});

afterAll(async () => {
  await app.close();
  await nats.close();
  await db.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function get(id: string) {
  return (await app.inject({ method: 'GET', url: `/v1/imports/${id}`, headers: auth })).json();
}

async function waitUntil(id: string, done: (run: { status: string }) => boolean) {
  for (let i = 0; i < 600; i++) {
    const run = await get(id);
    if (done(run)) return run;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`import ${id} did not reach the expected state`);
}

async function insertRun(owner: string, heartbeatAgoS: number): Promise<string> {
  const [row] = await db.sql<{ id: string }[]>`
    insert into import_runs (id, source_path, status, started_at, owner, heartbeat_at)
    values (gen_random_uuid(), 'old.sqlite', 'running', now(), ${owner},
            now() - ${heartbeatAgoS} * interval '1 second')
    returning id
  `;
  return row!.id;
}

describe('import runs with several instances', () => {
  it('a run whose importer stopped beating, or died on this host, is failed as abandoned; a live one is left alone', async () => {
    const stale = await insertRun('another-host:12:y', 120);
    // pid 2^22+1 is above Linux's pid_max: that process cannot exist
    const deadHere = await insertRun(`${hostname()}:4194305:x`, 0);
    const alive = await insertRun('another-host:13:z', 0);

    const staleRun = await waitUntil(stale, (run) => run.status !== 'running');
    expect(staleRun).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/^abandoned: no heartbeat from another-host:12:y for 1[12]\d s/),
    });
    expect(staleRun.finishedAt).not.toBeNull();
    expect(await waitUntil(deadHere, (run) => run.status !== 'running')).toMatchObject({
      status: 'failed',
      error: `abandoned: the import process that ran it (${hostname()}:4194305:x) is gone (stopped or killed)`,
    });
    expect((await get(alive)).status).toBe('running');
    await db.sql`update import_runs set status = 'failed' where id = ${alive}`;
  });

  it('records the instance running an import and its heartbeat', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/imports',
      headers: auth,
      payload: { path: 'legacy.sqlite', dryRun: true },
    });
    expect(res.statusCode).toBe(202);
    const { id } = res.json();
    const run = await waitUntil(id, (r) => r.status === 'succeeded' || r.status === 'failed');
    expect(run.status).toBe('succeeded');
    const [row] = await db.sql<{ owner: string | null; heartbeat_at: Date | null }[]>`
      select owner, heartbeat_at from import_runs where id = ${id}
    `;
    expect(row!.owner).toMatch(new RegExp(`^${hostname()}:${process.pid}:`));
    expect(row!.heartbeat_at).toBeInstanceOf(Date);
  });
});
