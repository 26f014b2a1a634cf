import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Auth,
  buildService,
  createAuth,
  createMetricsRegistry,
  errorResponses,
  HttpError,
  httpErrors,
  loggerOptions,
  type ServiceInstance,
  Type,
} from '../src/index.ts';

const WRITER = 'writer-token-0123456789';
const READER = 'reader-token-0123456789';
const grants = [
  { name: 'writer', token: WRITER, scopes: ['events:write'] },
  { name: 'reader', token: READER, scopes: ['search:read'] },
];

const apps: ServiceInstance[] = [];
afterAll(async () => {
  for (const app of apps) await app.close();
});

/** A service with one protected route, one validated route and one that fails unexpectedly. */
async function testApp(auth: Auth, logLines?: string[]): Promise<ServiceInstance> {
  const stream = new Writable({
    write(chunk, _enc, done) {
      logLines?.push(...String(chunk).trim().split('\n'));
      done();
    },
  });
  const app = await buildService({
    name: 'kit-test',
    version: '0.0.0',
    description: 'service kit test',
    metrics: createMetricsRegistry('kit-test'),
    auth,
    logger: logLines ? { ...(loggerOptions('info') as object), stream } : false,
  });
  app.post(
    '/v1/things',
    {
      config: { scope: 'events:write' },
      schema: {
        body: Type.Object({ name: Type.String({ minLength: 1 }) }),
        response: { 201: Type.Object({ ok: Type.Boolean() }), ...errorResponses(400, 401, 403) },
      },
    },
    async (request, reply) => {
      request.log.info(
        {
          headers: request.headers,
          user: { name: 'nelly', password: 'hunter2' },
          token: 'plain-token-value',
          config: { DATABASE_URL: 'postgres://app:s3cret@db/x', AUTH_TOKENS: '[{"token":"t0ps3cret"}]' },
        },
        'creating a thing',
      );
      return reply.status(201).send({ ok: true });
    },
  );
  app.get(
    '/v1/things',
    {
      config: { scope: 'search:read' },
      schema: { querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 100 }) }) },
    },
    async () => ({ ok: true }),
  );
  app.get('/v1/boom', { config: { public: true } }, async () => {
    throw new Error('connection to db-internal.example:5432 failed for user admin');
  });
  app.get('/v1/conflict', { config: { public: true } }, async () => {
    throw httpErrors.conflict('already imported', { importId: 'abc' });
  });
  app.get('/v1/teapot', { config: { public: true } }, async () => {
    throw new HttpError(418, 'TEAPOT', 'short and stout');
  });
  apps.push(app);
  return app;
}

const body = { name: 'x' };

describe('bearer auth with scopes', () => {
  it('401 without a token, with a malformed header or an unknown token; 403 without the scope', async () => {
    const app = await testApp(createAuth(grants));
    const cases: [Record<string, string>, number, RegExp][] = [
      [{}, 401, /missing Authorization header/],
      [{ authorization: `Basic ${WRITER}` }, 401, /must be "Bearer <token>"/],
      [{ authorization: 'Bearer not-a-known-token-000' }, 401, /unknown or revoked token/],
      [{ authorization: `Bearer ${READER}` }, 403, /token "reader" lacks the "events:write" scope/],
    ];
    for (const [headers, status, message] of cases) {
      const res = await app.inject({ method: 'POST', url: '/v1/things', headers, payload: body });
      expect(res.statusCode, JSON.stringify(headers)).toBe(status);
      const error = res.json().error;
      expect(error.code).toBe(status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN');
      expect(error.message).toMatch(message);
    }
    const ok = await app.inject({
      method: 'POST',
      url: '/v1/things',
      headers: { authorization: `Bearer ${WRITER}` },
      payload: body,
    });
    expect(ok.statusCode).toBe(201);
  });

  it('is off only when disabled is passed explicitly', async () => {
    const noTokens = await testApp(createAuth([]));
    expect((await noTokens.inject({ method: 'POST', url: '/v1/things', payload: body })).statusCode).toBe(
      401,
    );
    const notQuiteTrue = await testApp(createAuth([], { disabled: 'true' as unknown as boolean }));
    expect((await notQuiteTrue.inject({ method: 'POST', url: '/v1/things', payload: body })).statusCode).toBe(
      401,
    );
    const open = await testApp(createAuth([], { disabled: true }));
    expect((await open.inject({ method: 'POST', url: '/v1/things', payload: body })).statusCode).toBe(201);
  });
});

describe('one error shape', () => {
  it('404 for an unknown route', async () => {
    const app = await testApp(createAuth(grants));
    const res = await app.inject({
      method: 'GET',
      url: '/v1/nothing?here=1',
      headers: { authorization: `Bearer ${READER}` },
    });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({
      error: { code: 'NOT_FOUND', message: 'no route GET /v1/nothing; see /docs' },
    });
  });

  it('400 naming the field for a validation failure, and for malformed JSON', async () => {
    const app = await testApp(createAuth(grants));
    const res = await app.inject({
      method: 'GET',
      url: '/v1/things?limit=500',
      headers: { authorization: `Bearer ${READER}` },
    });
    expect(res.statusCode).toBe(400);
    const { error } = res.json();
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.message).toContain('querystring/limit must be <= 100');
    expect(error.details[0]).toMatchObject({ field: 'querystring/limit' });

    const bad = await app.inject({
      method: 'POST',
      url: '/v1/things',
      headers: { authorization: `Bearer ${WRITER}`, 'content-type': 'application/json' },
      payload: '{"name": ',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('INVALID_JSON');
  });

  it('HttpErrors keep their status, code and details', async () => {
    const app = await testApp(createAuth(grants));
    const conflict = await app.inject({ method: 'GET', url: '/v1/conflict' });
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json()).toEqual({
      error: { code: 'CONFLICT', message: 'already imported', details: { importId: 'abc' } },
    });
    expect((await app.inject({ method: 'GET', url: '/v1/teapot' })).json().error.code).toBe('TEAPOT');
  });

  it('500 with a generic message: no stack, no internal detail; the log gets the error', async () => {
    const lines: string[] = [];
    const app = await testApp(createAuth(grants), lines);
    const res = await app.inject({ method: 'GET', url: '/v1/boom' });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({
      error: { code: 'INTERNAL', message: 'internal error; see the service log' },
    });
    expect(res.body).not.toMatch(/stack|db-internal|\.ts:\d+/);
    const logged = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'request failed');
    expect(logged.err.message).toContain('db-internal.example');
    expect(logged.err.stack).toContain('http.test.ts');
    expect(res.headers['x-request-id']).toBe(logged.reqId);
  });
});

describe('logging', () => {
  it('redacts authorization headers, passwords, tokens and connection strings', async () => {
    const lines: string[] = [];
    const app = await testApp(createAuth(grants), lines);
    const res = await app.inject({
      method: 'POST',
      url: '/v1/things',
      headers: { authorization: `Bearer ${WRITER}`, 'x-request-id': 'req-redaction-1' },
      payload: body,
    });
    expect(res.statusCode).toBe(201);
    const all = lines.join('\n');
    expect(all).toContain('creating a thing');
    for (const secret of [WRITER, 'hunter2', 'plain-token-value', 's3cret', 't0ps3cret']) {
      expect(all).not.toContain(secret);
    }
    const entry = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'creating a thing');
    expect(entry.reqId).toBe('req-redaction-1');
    expect(entry.headers.authorization).toBe('[Redacted]');
    expect(entry.user).toEqual({ name: 'nelly', password: '[Redacted]' });
    expect(entry.token).toBe('[Redacted]');
    expect(entry.config.DATABASE_URL).toBe('[Redacted]');
  });
});

describe('access control before parsing', () => {
  it('answers 401 before the body is read or validated: no INVALID_JSON, 413 or 415 to a stranger', async () => {
    const app = await testApp(createAuth(grants));
    const attempts = [
      { 'content-type': 'application/json', payload: '{"name": ' },
      { 'content-type': 'application/json', payload: JSON.stringify({ name: 'x'.repeat(2_000_000) }) },
      { 'content-type': 'text/plain', payload: 'hello' },
      { 'content-type': 'application/json', payload: JSON.stringify({ wrong: 1 }) },
    ];
    for (const { payload, ...headers } of attempts) {
      const res = await app.inject({ method: 'POST', url: '/v1/things', headers, payload });
      expect(res.statusCode, payload.slice(0, 20)).toBe(401);
      expect(res.json().error.code).toBe('UNAUTHORIZED');
    }
    const unknown = await app.inject({ method: 'GET', url: '/v1/nothing' });
    expect(unknown.statusCode).toBe(401);
  });

  it('answers 415 to a text/plain body from a caller with the scope', async () => {
    const app = await testApp(createAuth(grants));
    const res = await app.inject({
      method: 'POST',
      url: '/v1/things',
      headers: { authorization: `Bearer ${WRITER}`, 'content-type': 'text/plain' },
      payload: '{"name":"x"}',
    });
    expect(res.statusCode).toBe(415);
    expect(res.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('refuses to register a route that names neither a scope nor public', async () => {
    const app = await testApp(createAuth(grants));
    expect(() => app.get('/v1/open-by-accident', async () => ({ ok: true }))).toThrow(
      /GET \/v1\/open-by-accident declares no access/,
    );
  });

  it('documents each route scope in OpenAPI, and /metrics needs metrics:read unless public', async () => {
    const app = await testApp(createAuth(grants));
    await app.ready();
    const doc = app.swagger() as { paths: Record<string, Record<string, { security?: unknown }>> };
    expect(doc.paths['/v1/things']?.post?.security).toEqual([{ bearerAuth: ['events:write'] }]);
    expect(doc.paths['/health']?.get?.security).toEqual([]);
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const metricsToken = 'metrics-token-0123456789';
    const scraper = await testApp(
      createAuth([{ name: 'prometheus', token: metricsToken, scopes: ['metrics:read'] }]),
    );
    const scraped = await scraper.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${metricsToken}` },
    });
    expect(scraped.statusCode).toBe(200);
    // the exposition text as it is, not serialised as a JSON string
    expect(scraped.body).toMatch(/^# HELP /m);
    const open = await testApp(createAuth([], { metricsPublic: true }));
    expect((await open.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
  });

  it('/ready tells a stranger only its status; a metrics:read token also gets each check', async () => {
    const metricsToken = 'metrics-token-0123456789';
    const app = await buildService({
      name: 'kit-ready',
      version: '0.0.0',
      description: 'readiness detail',
      metrics: createMetricsRegistry('kit-ready'),
      auth: createAuth([{ name: 'prometheus', token: metricsToken, scopes: ['metrics:read'] }]),
      readiness: {
        postgres: async () => {
          throw new Error('connect ECONNREFUSED 10.1.2.3:6543');
        },
      },
    });
    apps.push(app);
    const stranger = await app.inject({ method: 'GET', url: '/ready' });
    expect(stranger.statusCode).toBe(503);
    expect(stranger.json()).toEqual({ status: 'not_ready' });
    const insider = await app.inject({
      method: 'GET',
      url: '/ready',
      headers: { authorization: `Bearer ${metricsToken}` },
    });
    expect(insider.statusCode).toBe(503);
    expect(insider.json()).toMatchObject({ failing: ['postgres'], checks: { postgres: { ok: false } } });
    expect(insider.json().checks.postgres.error).toContain('ECONNREFUSED');
  });
});
