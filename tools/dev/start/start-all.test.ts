import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSql } from '@spywatcher/db';
import {
  createTestDatabase,
  type TestDatabase,
  UNREACHABLE_DATABASE_URL,
  UNREACHABLE_NATS_URL,
} from '@spywatcher/testing';
import { freePort, portOpen } from '@spywatcher/testing/ports';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePostgres } from './postgres.ts';
import { readSettings } from './settings.ts';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const startAll = join(root, 'tools/dev/start-all.ts');

/** The environment of a person who set nothing: DATABASE_URL and NATS_URL are not inherited. */
function bareEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, START_DOCKER: 'false', ...vars };
}

function run(env: NodeJS.ProcessEnv): {
  child: ChildProcess;
  output: () => { stdout: string; stderr: string };
} {
  const child = spawn(process.execPath, [startAll], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  return { child, output: () => ({ stdout, stderr }) };
}

async function runToEnd(
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { child, output } = run(env);
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, ...output() };
}

/** A failure as start-all must tell it: two lines, the first naming what, the second what to do. */
function expectTwoLineFailure(stderr: string): string[] {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(2);
  expect(stderr).not.toMatch(/^\s+at /m); // no stack frames
  expect(stderr).not.toMatch(/Error:|\.ts:\d+/);
  expect(lines[0]).toMatch(/^npm start: /);
  return lines;
}

describe('npm start when a server it was told to use is not there', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  it('names the unreachable PostgreSQL of DATABASE_URL and what to do, and starts nothing', async () => {
    const r = await runToEnd(
      bareEnv({ DATABASE_URL: UNREACHABLE_DATABASE_URL, NATS_URL: UNREACHABLE_NATS_URL }),
    );
    expect(r.code).toBe(1);
    const [what, hint] = expectTwoLineFailure(r.stderr);
    expect(what).toBe(
      'npm start: cannot use PostgreSQL at postgres://postgres@127.0.0.1:1/nowhere (DATABASE_URL): connection refused.',
    );
    expect(hint).toContain('Start PostgreSQL there');
    expect(hint).toContain('unset DATABASE_URL');
    expect(r.stdout).not.toContain('starting ingest');
  });

  it('names the unreachable NATS of NATS_URL and what to do, before migrating anything', async () => {
    const r = await runToEnd(bareEnv({ DATABASE_URL: db.url, NATS_URL: UNREACHABLE_NATS_URL }));
    expect(r.code).toBe(1);
    const [what, hint] = expectTwoLineFailure(r.stderr);
    expect(what).toBe('npm start: cannot use NATS at nats://127.0.0.1:1 (NATS_URL): connection refused.');
    expect(hint).toContain('Start NATS (with -js) there');
    expect(r.stdout).not.toContain('schema');
  });

  it('when no NATS can be had at all, says how to get one instead of waiting', async () => {
    const r = await runToEnd(
      bareEnv({
        DATABASE_URL: db.url,
        START_PROBE_NATS_URL: `nats://127.0.0.1:${await freePort()}`,
        NATS_SERVER_BIN: '/nonexistent/nats-server',
      }),
    );
    expect(r.code).toBe(1);
    const [what, hint] = expectTwoLineFailure(r.stderr);
    expect(what).toContain('no NATS: NATS_URL is not set, nothing answers at nats://127.0.0.1:');
    expect(what).toContain('no Docker engine (START_DOCKER=false)');
    expect(what).toContain('NATS_SERVER_BIN=/nonexistent/nats-server is not executable');
    expect(hint).toContain('apt-get install nats-server');
    expect(hint).toContain('release binary');
    expect(hint).toContain('docker run -p 4222:4222 nats:2.9 -js');
  });
});

describe('npm start on a machine without PostgreSQL or NATS', () => {
  let dataDir: string;
  let child: ChildProcess | undefined;
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'sw-start-'));
    // Run as root, PostgreSQL runs as the postgres user, which must reach the folder.
    chmodSync(dataDir, 0o755);
  });
  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGINT');
      await once(child, 'exit');
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('runs an embedded PostgreSQL and nats-server, with the services on database spywatcher, and stops them on Ctrl-C', async () => {
    const [pgPort, natsPort, ...ports] = await Promise.all([1, 2, 3, 4, 5, 6].map(() => freePort()));
    const started = run(
      bareEnv({
        START_PROBE_DATABASE_URL: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
        START_PROBE_NATS_URL: `nats://127.0.0.1:${natsPort}`,
        START_DATA_DIR: dataDir,
        INGEST_PORT: String(ports[0]),
        SEARCH_PORT: String(ports[1]),
        MIGRATOR_PORT: String(ports[2]),
        OPS_PORT: String(ports[3]),
      }),
    );
    child = started.child;
    const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
    const deadline = Date.now() + 200_000;
    while (!started.output().stdout.includes('Ctrl-C stops everything') && child.exitCode === null) {
      if (Date.now() > deadline) throw new Error(`not ready:\n${JSON.stringify(started.output(), null, 1)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const { stdout, stderr } = started.output();
    expect(child.exitCode, stderr).toBeNull();
    expect(stdout).toContain('npm start: created database spywatcher');
    expect(stdout).toContain(
      `embedded PostgreSQL 15 (data in ${dataDir}/postgres): postgres://postgres@127.0.0.1:${pgPort}/spywatcher`,
    );
    expect(stdout).toContain(`(data in ${dataDir}/nats): nats://127.0.0.1:${natsPort}`);
    expect(stdout).toMatch(/development token \(every scope, this run only\): dev-[0-9a-f]{32}/);
    for (const port of ports) {
      expect(stdout).toContain(`http://127.0.0.1:${port}/docs`);
      expect((await fetch(`http://127.0.0.1:${port}/ready`)).status).toBe(200);
    }

    // The schema is in spywatcher; the maintenance database was left alone.
    const own = createSql({
      url: `postgres://postgres@127.0.0.1:${pgPort}/spywatcher`,
      applicationName: 'test',
      max: 1,
    });
    const maintenance = createSql({
      url: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
      applicationName: 'test',
      max: 1,
    });
    try {
      const [{ n }] = await own<{ n: number }[]>`select count(*)::int as n from schema_migrations`;
      expect(n).toBeGreaterThan(0);
      const leaked = await maintenance`select 1 from pg_tables where schemaname = 'public'`;
      expect(leaked).toHaveLength(0);
    } finally {
      await own.end();
      await maintenance.end();
    }

    child.kill('SIGINT');
    const [code] = await exited;
    expect(code, started.output().stderr).toBe(0);
    expect(started.output().stdout).toContain('npm start: stopped');
    expect(await portOpen(pgPort)).toBe(false);
    expect(await portOpen(natsPort)).toBe(false);
  }, 240_000);

  it('keeps the embedded cluster between runs, and --fresh starts it clean', async () => {
    const env = bareEnv({
      START_PROBE_DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/postgres`,
      START_DATA_DIR: dataDir,
    });
    const again = await resolvePostgres(readSettings([], env, root));
    try {
      const sql = createSql({ url: again.url, applicationName: 'test', max: 1 });
      const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from schema_migrations`;
      await sql.end();
      expect(n).toBeGreaterThan(0);
    } finally {
      await again.stop?.();
    }
    const fresh = await resolvePostgres(readSettings(['--fresh'], env, root));
    try {
      const sql = createSql({ url: fresh.url, applicationName: 'test', max: 1 });
      const rows = await sql`select 1 from pg_tables where tablename = 'schema_migrations'`;
      await sql.end();
      expect(rows).toHaveLength(0);
    } finally {
      await fresh.stop?.();
    }
  }, 120_000);
});
