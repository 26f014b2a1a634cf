import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Validator } from '@seriousme/openapi-schema-validator';
import { createSql, type Sql } from '@spywatcher/db';
import { type Auth, createAuth, createMetricsRegistry, type Registry } from '@spywatcher/service';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  type TestDatabase,
  testNatsNames,
  testNatsUrl,
  UNREACHABLE_DATABASE_URL,
} from './index.ts';
import { collectOutput } from './output.ts';
import { freePort } from './ports.ts';

export { freePort };

/** A bearer token holding every scope, accepted by the apps the contract builds. */
export const CONTRACT_TOKEN = 'contract-test-token-0123456789';
const asContract = { authorization: `Bearer ${CONTRACT_TOKEN}` };

/** The only operations a caller without a token may use. */
const PUBLIC_OPERATIONS = ['GET /health', 'GET /ready'];

/** What the contract hands to a service's build function: real connections, built per app. */
export interface ContractRuntime {
  sql: Sql;
  nats: NatsConnection;
  auth: Auth;
  metrics: Registry;
  /** Fastify logger option: off, so test output stays readable. */
  logger: false;
  /** This file's own database (the one `sql` points at, except in the "unreachable" case). */
  databaseUrl: string;
  natsUrl: string;
  /** Unique NATS stream name and subject prefix for this file. */
  natsNames: { prefix: string; stream: string };
}

interface InjectResponse {
  statusCode: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
  json: () => unknown;
}

/** The part of a Fastify instance the contract uses. */
export interface InjectableApp {
  inject(options: {
    method: string;
    url: string;
    headers?: Record<string, string>;
    payload?: string;
  }): Promise<InjectResponse>;
  close(): Promise<unknown>;
}

export type BuiltService = InjectableApp | { app: InjectableApp; stop?: () => Promise<void> };

export interface ServiceContractOptions {
  /** Service name as in `startService({ name })` (used in test titles). */
  name: string;
  /** Builds the app from the runtime, the way the service's main.ts does it with real config. */
  build: (runtime: ContractRuntime) => Promise<BuiltService>;
  /** Absolute path of the service's src/main.ts, for the graceful-shutdown test. */
  mainPath: string;
  /** Extra environment for the spawned main.ts (service-specific variables). */
  env?: (runtime: {
    databaseUrl: string;
    natsUrl: string;
    natsNames: { prefix: string; stream: string };
  }) => Record<string, string>;
}

function unwrap(built: BuiltService): { app: InjectableApp; stop?: () => Promise<void> } {
  return 'inject' in built ? { app: built } : built;
}

async function waitForReady(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 45_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`service exited with ${child.exitCode} before ready:\n${output()}`);
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`service never answered 200 on ${url}:\n${output()}`);
}

/**
 * The checks every SpyWatcher service must pass (see the foundation issue): /health, /ready
 * (and 503 naming postgres when PostgreSQL is unreachable), a valid OpenAPI 3.x document,
 * Prometheus metrics, the one error shape, and a graceful exit 0 on SIGTERM of the real main.ts.
 * A service test is then: `describeServiceContract({ name, build, mainPath })`.
 */
export function describeServiceContract(options: ServiceContractOptions): void {
  describe(`${options.name}: service contract`, () => {
    let db: TestDatabase;
    let nats: NatsConnection;
    const natsNames = testNatsNames(options.name.slice(0, 6));
    const cleanups: (() => Promise<unknown>)[] = [];

    async function buildWith(sql: Sql, databaseUrl: string): Promise<InjectableApp> {
      const built = unwrap(
        await options.build({
          sql,
          nats,
          auth: createAuth([{ name: 'contract', token: CONTRACT_TOKEN, scopes: ['*'] }]),
          metrics: createMetricsRegistry(options.name),
          logger: false,
          databaseUrl,
          natsUrl: testNatsUrl(),
          natsNames,
        }),
      );
      cleanups.push(async () => {
        await built.app.close();
        await built.stop?.();
      });
      return built.app;
    }

    let app: InjectableApp;
    beforeAll(async () => {
      db = await createTestDatabase();
      nats = await connect({ servers: testNatsUrl(), name: `contract-${options.name}` });
      app = await buildWith(db.sql, db.url);
    });
    afterAll(async () => {
      while (cleanups.length) await cleanups.pop()!();
      if (nats) {
        // A service may have created this file's stream (e.g. ingest's consumer): leave no trace.
        const jsm = await jetstreamManager(nats);
        await jsm.streams.delete(natsNames.stream).catch(() => false);
        // ingest also keeps dead letters in `<stream>_DEAD`
        await jsm.streams.delete(`${natsNames.stream}_DEAD`).catch(() => false);
        await nats.drain();
      }
      await db?.drop();
    });

    it('GET /health answers 200', async () => {
      const res = await app.inject({ method: 'GET', url: '/health' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ status: 'ok' });
    });

    it('GET /ready answers 200 when PostgreSQL and NATS answer', async () => {
      const res = await app.inject({ method: 'GET', url: '/ready', headers: asContract });
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json() as { status: string; checks: Record<string, { ok: boolean }> };
      expect(body.status).toBe('ready');
      expect(body.checks.postgres?.ok).toBe(true);
      expect(body.checks.nats?.ok).toBe(true);
    });

    it('GET /ready answers 503 naming postgres when PostgreSQL is unreachable', async () => {
      const down = createSql({
        url: UNREACHABLE_DATABASE_URL,
        applicationName: 'contract-unreachable',
        max: 1,
        connectTimeoutS: 2,
      });
      cleanups.push(() => down.end({ timeout: 1 }));
      const broken = await buildWith(down, UNREACHABLE_DATABASE_URL);
      const res = await broken.inject({ method: 'GET', url: '/ready', headers: asContract });
      expect(res.statusCode).toBe(503);
      const body = res.json() as {
        status: string;
        failing: string[];
        checks: Record<string, { ok: boolean }>;
      };
      expect(body.status).toBe('not_ready');
      expect(body.failing).toContain('postgres');
      expect(body.checks.nats?.ok).toBe(true);
      const stranger = await broken.inject({ method: 'GET', url: '/ready' });
      expect(stranger.statusCode).toBe(503);
      expect(stranger.json()).toEqual({ status: 'not_ready' });
    });

    it('every operation but /health and /ready answers 401 without a token, before validation', async () => {
      const spec = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as {
        paths: Record<string, Record<string, { security?: unknown[] }>>;
      };
      const operations = Object.entries(spec.paths).flatMap(([path, item]) =>
        Object.entries(item).map(([method, op]) => ({ method: method.toUpperCase(), path, op })),
      );
      for (const { method, path, op } of operations) {
        const key = `${method} ${path}`;
        if (PUBLIC_OPERATIONS.includes(key)) continue;
        expect(op.security, key).toEqual([{ bearerAuth: [expect.stringMatching(/^[a-z]+:[a-z]+$/)] }]);
        // Path parameters and the body are left malformed on purpose: a stranger learns nothing but 401.
        const res = await app.inject({
          method,
          url: path.replace(/\{[^}]+\}/g, 'x'),
          headers: { 'content-type': 'application/json' },
          payload: method === 'GET' ? undefined : '{"broken": ',
        });
        expect(res.statusCode, `${key}: ${res.body}`).toBe(401);
        expect((res.json() as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
      }
    });

    it('GET /openapi.json is a valid OpenAPI 3.x document', async () => {
      const res = await app.inject({ method: 'GET', url: '/openapi.json' });
      expect(res.statusCode).toBe(200);
      const spec = res.json() as { openapi: string; paths: Record<string, unknown> };
      expect(spec.openapi).toMatch(/^3\./);
      expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/health', '/ready', '/metrics']));
      const result = await new Validator().validate(spec as unknown as Record<string, unknown>);
      expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).toEqual([]);
      expect(result.valid).toBe(true);
    });

    it('GET /docs serves the interactive API docs', async () => {
      const res = await app.inject({ method: 'GET', url: '/docs' });
      if (res.statusCode === 302) expect(String(res.headers.location)).toMatch(/docs/);
      else {
        expect(res.statusCode).toBe(200);
        expect(String(res.headers['content-type'])).toMatch(/text\/html/);
      }
    });

    it('GET /metrics serves Prometheus text with the request histogram and dependency gauges', async () => {
      await app.inject({ method: 'GET', url: '/health' });
      const res = await app.inject({ method: 'GET', url: '/metrics', headers: asContract });
      expect(res.statusCode).toBe(200);
      expect(String(res.headers['content-type'])).toMatch(/^text\/plain/);
      expect(res.body).toContain('# TYPE http_request_duration_seconds histogram');
      expect(res.body).toMatch(
        /http_request_duration_seconds_bucket\{[^}]*route="\/health"[^}]*status_code="200"/,
      );
      expect(res.body).toMatch(/^pg_up\{[^}]*\} 1$/m);
      expect(res.body).toContain('# TYPE pg_pool_connections gauge');
      expect(res.body).toMatch(/^pg_pool_max_connections\{[^}]*\} \d+$/m);
      expect(res.body).toMatch(/^nats_connected\{[^}]*\} 1$/m);
    });

    it('answers an unknown route with the error shape and no stack trace', async () => {
      const res = await app.inject({ method: 'GET', url: '/no/such/route?x=1', headers: asContract });
      expect(res.statusCode).toBe(404);
      const body = res.json() as { error: { code: string; message: string } };
      expect(body.error.code).toBe('NOT_FOUND');
      expect(body.error.message).toContain('/no/such/route');
      expect(res.body).not.toMatch(/stack|at .*\.ts:\d+/);
    });

    it('main.ts exits 0 on SIGTERM after becoming ready', async () => {
      const port = await freePort();
      const extra = options.env?.({ databaseUrl: db.url, natsUrl: testNatsUrl(), natsNames }) ?? {};
      const child = spawn(process.execPath, [options.mainPath], {
        env: {
          ...process.env,
          DATABASE_URL: db.url,
          NATS_URL: testNatsUrl(),
          HOST: '127.0.0.1',
          PORT: String(port),
          LOG_LEVEL: 'info',
          AUTH_TOKENS: JSON.stringify([{ name: 'contract', token: CONTRACT_TOKEN, scopes: ['*'] }]),
          AUTH_DISABLED: 'false',
          SHUTDOWN_TIMEOUT_MS: '10000',
          ...extra,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const output = collectOutput(child);
      const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      try {
        await waitForReady(`http://127.0.0.1:${port}/ready`, child, output);
        child.kill('SIGTERM');
        const [code, signal] = await exited;
        expect({ code, signal }, output()).toEqual({ code: 0, signal: null });
        expect(output()).toContain('shutting down');
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });
  });
}
