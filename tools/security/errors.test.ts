import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createTestDatabase, type TestDatabase, testNatsUrl } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { as, buildFourServices, type FourServices, TOKENS } from './services.ts';

/**
 * Bad input answers 400 naming the parameter (never a 500), a wrong body type 415, and no error
 * body carries a host, a port or a server path.
 */
let db: TestDatabase;
let nats: NatsConnection;
let services: FourServices;
const bodies: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl(), name: 'security-errors' });
  services = await buildFourServices({ sql: db.sql, databaseUrl: db.url, nats });
});
afterAll(async () => {
  await services?.close();
  await nats?.drain();
  await db?.drop();
});

async function call(
  service: keyof FourServices['apps'],
  url: string,
  init: { method?: 'GET' | 'POST'; headers?: Record<string, string>; payload?: string } = {},
) {
  const res = await services.apps[service].inject({
    method: init.method ?? 'GET',
    url,
    headers: { ...as(TOKENS.all), ...init.headers },
    payload: init.payload,
  });
  bodies.push(res.body);
  return res;
}

async function expect400(service: keyof FourServices['apps'], url: string, parameter: string) {
  const res = await call(service, url);
  expect(res.statusCode, `${url}: ${res.body}`).toBe(400);
  expect(res.json().error.message, url).toContain(parameter);
  return res.json().error as { code: string; message: string; details?: { parameter?: string } };
}

/** A keyset cursor as the API encodes them, with a hand-made time. */
const cursor = (k: string, t: string, extra: Record<string, unknown> = {}) =>
  Buffer.from(JSON.stringify({ k, t, i: '00000000-0000-4000-8000-000000000000', ...extra })).toString(
    'base64url',
  );

describe('400 naming the parameter', () => {
  it('search: a date filter PostgreSQL cannot hold', async () => {
    for (const q of ['during:0000', 'before:0000-01', 'after:0000-01-01', 'during:0000-01-01T00:00:00Z']) {
      const error = await expect400('search', `/v1/search/messages?q=${encodeURIComponent(q)}`, 'q');
      expect(error.code).toBe('INVALID_QUERY');
    }
  });

  it('search and timeline: hand-made cursors with impossible times', async () => {
    const times = [
      '2026-13-01T00:00:00.000000Z',
      '0000-01-01T00:00:00.000000Z',
      '99999-01-01T00:00:00.000000Z',
      '2026-02-30T00:00:00.000000Z',
      '2026-01-01T24:00:00.000000Z',
    ];
    for (const t of times) {
      const newest = await expect400(
        'search',
        `/v1/search/messages?q=hello&sort=newest&cursor=${cursor('new', t)}`,
        'cursor',
      );
      expect(newest).toMatchObject({ code: 'INVALID_CURSOR', details: { parameter: 'cursor' } });
      const good = '2026-01-01T00:00:00.000000Z';
      const key = { t: good, i: '00000000-0000-4000-8000-000000000000' };
      const relevance = cursor('rel', t, { r: '0.5', w: key, l: key });
      await expect400('search', `/v1/search/messages?q=hello&sort=relevance&cursor=${relevance}`, 'cursor');
      const timeline = await expect400(
        'search',
        `/v1/users/1/timeline?cursor=${cursor('tl', t, { y: 'message' })}`,
        'cursor',
      );
      expect(timeline.code).toBe('INVALID_CURSOR');
    }
  });

  it('analytics: days that do not exist', async () => {
    await expect400('search', '/v1/analytics/lurkers?from=2026-02-30&to=2026-03-10', 'from');
    await expect400('search', '/v1/analytics/lurkers?from=0000-01-01&to=2026-01-10', 'from');
    await expect400('search', '/v1/analytics/ghosts?minTyping=1e20', 'minTyping');
  });

  it('ops: a health threshold beyond any interval', async () => {
    await expect400('ops', '/v1/database/health?longQueryMs=1e20', 'longQueryMs');
    await expect400('ops', '/v1/database/health?idleInTransactionMs=1e20', 'idleInTransactionMs');
  });
});

describe('415 for a body of another type', () => {
  it('ingest refuses text/plain instead of answering 200 with every item rejected', async () => {
    const res = await call('ingest', '/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      payload: '[{"type":"message"}]',
    });
    expect(res.statusCode, res.body).toBe(415);
    expect(res.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('the migrator and ops refuse text/plain too', async () => {
    const imports = await call('migrator', '/v1/imports', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      payload: '{"path":"x.db"}',
    });
    expect(imports.statusCode).toBe(415);
    const restore = await call('ops', '/v1/restores', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      payload: '{}',
    });
    expect(restore.statusCode).toBe(415);
  });
});

describe('imports: no oracle for files outside the import directory', () => {
  it('a path outside answers exactly as a missing file, and no body names a server path', async () => {
    writeFileSync(join(services.importDir, 'not-sqlite.db'), 'plain text');
    const post = (path: string) =>
      call('migrator', '/v1/imports', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ path }),
      });
    const answers = new Map<string, { status: number; message: string }>();
    for (const path of [
      '/etc/passwd',
      '/no/such/file',
      '../../../../etc/hostname',
      '../nope',
      'missing.db',
    ]) {
      const res = await post(path);
      answers.set(path, {
        status: res.statusCode,
        message: res.json().error.message.replace(JSON.stringify(path), '<path>'),
      });
    }
    expect(
      new Set([...answers.values()].map((a) => JSON.stringify(a))).size,
      JSON.stringify([...answers]),
    ).toBe(1);
    expect(answers.get('/etc/passwd')!.status).toBe(400);

    // A file inside that is not a legacy database: the failed job names it as the caller did.
    const res = await post('not-sqlite.db');
    expect(res.statusCode, res.body).toBe(202);
    let run: { status: string; error: string | null };
    do {
      await new Promise((r) => setTimeout(r, 100));
      run = (await call('migrator', res.json().url)).json();
    } while (run.status === 'queued' || run.status === 'running');
    expect(run.error).toContain('not-sqlite.db');
    expect(JSON.stringify(run)).not.toContain(services.importDir);
  });
});

describe('error bodies', () => {
  it('name no host, port or server path', () => {
    expect(bodies.length).toBeGreaterThan(20);
    for (const body of bodies) {
      expect(body).not.toMatch(/127\.0\.0\.1|localhost|:\d{4,5}\b|\/tmp\/|\/var\/|\/home\/|\/work\//);
    }
  });
});
