import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createAuth, createMetricsRegistry, type ServiceInstance } from '@spywatcher/service';
import { createTestDatabase, type TestDatabase, testNatsUrl } from '@spywatcher/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { MIGRATIONS_DIR } from '../src/migrations-dir.ts';

const READER = 'migrations-reader-0123456789';

let db: TestDatabase;
let nats: NatsConnection;
let app: ServiceInstance;

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl(), name: 'migrations-api-tests' });
  app = await buildApp({
    sql: db.sql,
    nats,
    auth: createAuth([{ name: 'reader', token: READER, scopes: ['migrations:read'] }]),
    metrics: createMetricsRegistry('migrator'),
    logger: false,
  });
});

afterAll(async () => {
  await app.close();
  await nats.close();
  await db.drop();
});

it('GET /v1/migrations lists the versioned and the repeatable migrations with their state', async () => {
  const res = await app.inject({
    method: 'GET',
    url: '/v1/migrations',
    headers: { authorization: `Bearer ${READER}` },
  });
  expect(res.statusCode).toBe(200);
  const body = res.json();
  expect(body.pending).toBe(0);
  expect(body.current).toBe(body.migrations.at(-1).version);
  const files = (await readdir(join(MIGRATIONS_DIR, 'repeatable'))).sort();
  expect(body.repeatables.map((r: { file: string }) => r.file)).toEqual(files.map((f) => `repeatable/${f}`));
  expect(body.repeatables.every((r: { state: string }) => r.state === 'applied')).toBe(true);
});
