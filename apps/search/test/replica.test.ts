import { randomUUID } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createSql, migrate, type Sql, withDatabase } from '@spywatcher/db';
import { createAuth, type ServiceInstance } from '@spywatcher/service';
import { testNatsUrl } from '@spywatcher/testing';
import {
  type PgReplica,
  type PgServer,
  startPrimary,
  startReplica,
} from '@spywatcher/testing/postgres-replica';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { createSearchSql } from '../src/search/pool.ts';
import { generateCorpus, loadCorpus } from './search-corpus.ts';

// The migrator's migrations, as the root vitest config provides them (an app never imports another).
const MIGRATIONS_DIR = inject('migrationsDir');

// Search on a streaming replica of a private primary (the shared server is never reconfigured):
// a message stored on the primary is found on the replica once replayed; /ready shows the lag;
// after a promotion the same pool serves a primary.

const READER = 'reader-token-0123456789';
// /ready shows its checks (and so the replica's lag) only to a token with metrics:read
const MONITOR = 'monitor-token-0123456789';
let primary: PgServer;
let replica: PgReplica;
let primarySql: Sql;
let nats: NatsConnection;
let app: ServiceInstance;

const waitFor = async <T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> => {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

beforeAll(async () => {
  primary = await startPrimary();
  const setup = createSql({ url: primary.url, applicationName: 'spywatcher-tests', max: 1 });
  await setup`create database spywatcher`;
  await setup.end();
  primarySql = createSql({
    url: withDatabase(primary.url, 'spywatcher'),
    applicationName: 'spywatcher-tests',
    max: 2,
  });
  await migrate({ sql: primarySql, dir: MIGRATIONS_DIR });
  replica = await startReplica({ primaryUrl: primary.url });
  nats = await connect({ servers: testNatsUrl() });
  const config = {
    DATABASE_URL: withDatabase(primary.url, 'spywatcher'),
    SEARCH_DATABASE_URL: withDatabase(replica.url, 'spywatcher'),
    SEARCH_DATABASE_POOL_MAX: 2,
    SEARCH_STATEMENT_TIMEOUT_MS: 10_000,
  };
  app = await buildApp({
    sql: primarySql,
    searchSql: createSearchSql(config),
    replicaMaxLagMs: 60_000,
    nats,
    auth: createAuth([
      { name: 'reader', token: READER, scopes: ['search:read'] },
      { name: 'monitor', token: MONITOR, scopes: ['metrics:read'] },
    ]),
    metrics: new Registry(),
  });
}, 180_000);

afterAll(async () => {
  await app?.close();
  await nats?.close();
  await primarySql?.end({ timeout: 5 });
  await replica?.destroy();
  await primary?.destroy();
});

const ready = async () => {
  const res = await app.inject({ url: '/ready', headers: { authorization: `Bearer ${MONITOR}` } });
  return { status: res.statusCode, body: res.json() };
};

const search = async (q: string) => {
  const res = await app.inject({
    url: `/v1/search/messages?q=${encodeURIComponent(q)}`,
    headers: { authorization: `Bearer ${READER}` },
  });
  expect(res.statusCode).toBe(200);
  return res.json() as { results: { id: string }[] };
};

describe('search reading from a streaming replica', () => {
  it('reports the replica and its lag in /ready', async () => {
    const { status, body } = await ready();
    expect(status).toBe(200);
    expect(body.checks.search_database).toMatchObject({
      ok: true,
      details: { standby: true, receiving: true, replicationLagMs: expect.any(Number) },
    });
  });

  it('finds a message stored on the primary once the replica has replayed it', async () => {
    const word = `replicated${randomUUID().slice(0, 8)}`;
    const [message] = generateCorpus(1, 5, Date.now() - 60_000);
    await loadCorpus(primarySql, [{ ...message!, content: `a ${word} message` }]);
    const found = await waitFor('the message on the replica', async () => {
      const { results } = await search(word);
      return results.length > 0 ? results : undefined;
    });
    expect(found.map((r) => r.id)).toEqual([message!.id]);
  });

  it('after a promotion, serves the promoted server as a primary', async () => {
    await replica.promote();
    const { status, body } = await ready();
    expect(status).toBe(200);
    expect(body.checks.search_database.details).toMatchObject({ standby: false, replicationLagMs: null });
    const promoted = createSql({
      url: withDatabase(replica.url, 'spywatcher'),
      applicationName: 'spywatcher-tests',
      max: 1,
    });
    try {
      const [row] = await promoted<{ writable: boolean }[]>`select not pg_is_in_recovery() as writable`;
      expect(row!.writable).toBe(true);
    } finally {
      await promoted.end();
    }
  });
});
