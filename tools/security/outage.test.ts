import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createSql, reconnectDelayS, type Sql } from '@spywatcher/db';
import { createTemplateDatabase } from '@spywatcher/testing';
import { type PrivatePostgres, startPrivatePostgres } from '@spywatcher/testing/private-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleEvents } from '../../libs/events/test/fixtures.ts';
import { as, buildFourServices, type FourServices, type ServiceName, TOKENS } from './services.ts';

/**
 * A database outage on a PostgreSQL of this test's own (pg_ctl on a free port, never the shared
 * server): every service answers 503 with Retry-After and no host or port, /ready says only
 * "not_ready", and each answers again once the database is back.
 */
let pg: PrivatePostgres;
let sql: Sql;
let nats: NatsConnection;
let services: FourServices;

/** One route per service that needs the database to answer. */
const READS: [ServiceName, string][] = [
  ['ingest', '/v1/events/message/00000000-0000-4000-8000-000000000000'],
  ['search', '/v1/search/messages?q=hello'],
  ['search', '/v1/users/1/timeline'],
  ['search', '/v1/analytics/lurkers'],
  ['search', '/v1/projections'],
  ['migrator', '/v1/migrations'],
  ['ops', '/v1/jobs'],
  ['ops', '/v1/database/health'],
];

beforeAll(async () => {
  pg = await startPrivatePostgres();
  const db = await createTemplateDatabase(pg.url);
  sql = createSql({ url: db.url, applicationName: 'security-outage', max: 4 });
  nats = await connect({ servers: process.env.NATS_URL ?? 'nats://127.0.0.1:4222', name: 'security-outage' });
  services = await buildFourServices({ sql, databaseUrl: db.url, nats });
});
afterAll(async () => {
  await services?.close();
  await sql?.end({ timeout: 1 });
  await nats?.drain();
  await pg?.close();
});

const get = (service: ServiceName, url: string) =>
  services.apps[service].inject({ url, headers: as(TOKENS.all) });

async function eachAnswers(statuses: number[]) {
  for (const [service, url] of READS) {
    const res = await get(service, url);
    expect(statuses, `${service} ${url}: ${res.statusCode} ${res.body}`).toContain(res.statusCode);
  }
}

describe('PostgreSQL goes away', () => {
  it('every service answers 503 with Retry-After, naming no host or port, and recovers', async () => {
    await eachAnswers([200, 404]);

    await pg.stop();
    for (const [service, url] of READS) {
      const res = await get(service, url);
      expect(res.statusCode, `${service} ${url}: ${res.body}`).toBe(503);
      expect(Number(res.headers['retry-after']), url).toBeGreaterThan(0);
      expect(res.json().error.code).toMatch(/UNAVAILABLE/);
      expect(res.body).not.toMatch(/127\.0\.0\.1|localhost|ECONNREFUSED|:\d{4,5}\b/);
    }
    const ingest = await services.apps.ingest.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { ...as(TOKENS.all), 'content-type': 'application/json' },
      payload: JSON.stringify(Object.values(sampleEvents())),
    });
    expect(ingest.statusCode, ingest.body).toBe(503);
    expect(Number(ingest.headers['retry-after'])).toBeGreaterThan(0);
    for (const service of ['ingest', 'search', 'migrator', 'ops'] as const) {
      const ready = await services.apps[service].inject({ url: '/ready' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json()).toEqual({ status: 'not_ready' });
    }

    await pg.start();
    // The pool retries with a delay capped at a second, so the first calls after the restart answer.
    let attempts = 0;
    for (;;) {
      attempts++;
      const res = await get('search', '/v1/search/messages?q=hello');
      if (res.statusCode === 200) break;
      expect(res.statusCode).toBe(503);
      expect(attempts).toBeLessThan(100);
      await new Promise((r) => setTimeout(r, 200));
    }
    await eachAnswers([200, 404]);
  });

  it('the pool waits at most a second between connection attempts, however long the outage', () => {
    for (let retries = 0; retries < 200; retries++) expect(reconnectDelayS(retries)).toBeLessThanOrEqual(1);
  });
});
