import { readFileSync } from 'node:fs';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createTestDatabase, type TestDatabase, testNatsUrl } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCOPES } from '../dev/start/scopes.ts';
import { as, buildFourServices, type FourServices, SERVICE_NAMES, securityAuth, TOKENS } from './services.ts';

/**
 * Who may call what, on all four services built as in production: every route needs a scope
 * except /health, /ready, /openapi.json and /docs; a caller without a valid token learns
 * nothing but 401, one without the scope nothing but 403, before the request is parsed.
 */
type Operation = { method: string; path: string; security?: { bearerAuth?: string[] }[] };

let db: TestDatabase;
let nats: NatsConnection;
let services: FourServices;
const operations: Record<string, Operation[]> = {};

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl(), name: 'security-access' });
  services = await buildFourServices({ sql: db.sql, databaseUrl: db.url, nats });
  for (const name of SERVICE_NAMES) {
    await services.apps[name].ready();
    const doc = services.apps[name].swagger() as {
      paths: Record<string, Record<string, { security?: Operation['security'] }>>;
    };
    operations[name] = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => ({
        method: method.toUpperCase(),
        path,
        security: op.security,
      })),
    );
  }
});
afterAll(async () => {
  await services?.close();
  await nats?.drain();
  await db?.drop();
});

/** Larger than any service's body limit: still 401, not 413, for a stranger. */
const TOO_LARGE = 'x'.repeat(6 * 1024 * 1024);

const scopeOf = (op: Operation) => op.security?.[0]?.bearerAuth?.[0];
const urlOf = (op: Operation) => op.path.replace(/\{[^}]+\}/g, '00000000-0000-4000-8000-000000000000');

describe('scopes', () => {
  it('every operation but /health and /ready names one scope; the development token holds them all', () => {
    const declared = new Set<string>();
    for (const name of SERVICE_NAMES) {
      for (const op of operations[name]!) {
        if (op.path === '/health' || op.path === '/ready') continue;
        const scope = scopeOf(op);
        expect(scope, `${name} ${op.method} ${op.path}`).toMatch(/^[a-z]+:[a-z]+$/);
        declared.add(scope!);
      }
    }
    expect([...declared].filter((s) => !SCOPES.includes(s))).toEqual([]);
    const readme = readFileSync(new URL('../../libs/service/README.md', import.meta.url), 'utf8');
    for (const scope of declared) expect(readme, scope).toContain(`| \`${scope}\``);
  });

  it('analytics need analytics:read; migrations, projections and jobs a read scope; metrics metrics:read', () => {
    const scope = (service: string, method: string, path: string) =>
      scopeOf(operations[service]!.find((o) => o.method === method && o.path === path)!);
    const analytics = operations.search!.filter((o) => o.path.startsWith('/v1/analytics/'));
    expect(analytics).toHaveLength(10);
    for (const op of analytics) expect(scopeOf(op)).toBe('analytics:read');
    expect(scope('migrator', 'GET', '/v1/migrations')).toBe('migrations:read');
    expect(scope('search', 'GET', '/v1/projections')).toBe('projections:read');
    expect(scope('search', 'GET', '/v1/projections/{name}/rebuilds/{id}')).toBe('projections:read');
    expect(scope('ops', 'GET', '/v1/jobs')).toBe('ops:read');
    expect(scope('ops', 'GET', '/v1/jobs/{id}')).toBe('ops:read');
    for (const name of SERVICE_NAMES) expect(scope(name, 'GET', '/metrics')).toBe('metrics:read');
  });
});

describe('authentication before parsing', () => {
  it('no token, a malformed header or an unknown token: 401 on every protected route, whatever the body', async () => {
    for (const name of SERVICE_NAMES) {
      for (const op of operations[name]!.filter(scopeOf)) {
        for (const headers of [{}, { authorization: 'Basic x' }, as('not-a-known-token-0123456789')]) {
          for (const payload of ['{"broken": ', TOO_LARGE]) {
            const res = await services.apps[name].inject({
              method: op.method as 'GET',
              url: `${urlOf(op)}?longQueryMs=1e20&limit=-1`,
              headers: { ...headers, 'content-type': 'text/plain' },
              payload: op.method === 'GET' ? undefined : payload,
            });
            expect(res.statusCode, `${name} ${op.method} ${op.path}: ${res.body.slice(0, 200)}`).toBe(401);
            expect(Object.keys(res.json().error).sort()).toEqual(['code', 'message']);
          }
        }
      }
    }
  });

  it('a token without the scope: 403 naming the scope, before the body is parsed', async () => {
    for (const name of SERVICE_NAMES) {
      for (const op of operations[name]!.filter(scopeOf)) {
        const res = await services.apps[name].inject({
          method: op.method as 'GET',
          url: urlOf(op),
          headers: { ...as(TOKENS.unrelated), 'content-type': 'application/json' },
          payload: op.method === 'GET' ? undefined : '{"broken": ',
        });
        expect(res.statusCode, `${name} ${op.method} ${op.path}`).toBe(403);
        expect(res.json().error.message).toContain(`"${scopeOf(op)}"`);
      }
    }
  });

  it('the analytics, migrations, projections and jobs answer a token holding their scope', async () => {
    const reads = [
      ['search', '/v1/analytics/suspicion'],
      ['search', '/v1/analytics/heatmap'],
      ['search', '/v1/projections'],
      ['migrator', '/v1/migrations'],
      ['ops', '/v1/jobs'],
    ] as const;
    for (const [name, url] of reads) {
      expect((await services.apps[name].inject({ url })).statusCode, url).toBe(401);
      const res = await services.apps[name].inject({ url, headers: as(TOKENS.all) });
      expect(res.statusCode, `${url}: ${res.body}`).toBe(200);
    }
  });
});

describe('public routes', () => {
  it('/health, /ready, /openapi.json and /docs answer without a token; /ready tells only its status', async () => {
    for (const name of SERVICE_NAMES) {
      const app = services.apps[name];
      expect((await app.inject({ url: '/health' })).statusCode).toBe(200);
      expect((await app.inject({ url: '/openapi.json' })).statusCode).toBe(200);
      expect((await app.inject({ url: '/docs' })).statusCode).toBeLessThan(400);
      const ready = await app.inject({ url: '/ready' });
      expect(ready.json(), name).toEqual({ status: 'ready' });
      const detail = await app.inject({ url: '/ready', headers: as(TOKENS.metrics) });
      expect(detail.json().checks.postgres.ok, name).toBe(true);
    }
  });

  it('/metrics needs metrics:read, unless METRICS_PUBLIC', async () => {
    for (const name of SERVICE_NAMES) {
      const app = services.apps[name];
      expect((await app.inject({ url: '/metrics' })).statusCode).toBe(401);
      expect((await app.inject({ url: '/metrics', headers: as(TOKENS.unrelated) })).statusCode).toBe(403);
      const scraped = await app.inject({ url: '/metrics', headers: as(TOKENS.metrics) });
      expect(scraped.statusCode).toBe(200);
      expect(scraped.body).toContain('http_request_duration_seconds');
    }
    const open = await buildFourServices({
      sql: db.sql,
      databaseUrl: db.url,
      nats,
      auth: securityAuth({ metricsPublic: true }),
    });
    try {
      for (const name of SERVICE_NAMES) {
        expect((await open.apps[name].inject({ url: '/metrics' })).statusCode, name).toBe(200);
        expect((await open.apps[name].inject({ url: '/v1/jobs' })).statusCode).not.toBe(200);
      }
    } finally {
      await open.close();
    }
  });
});
