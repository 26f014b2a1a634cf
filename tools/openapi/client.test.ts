import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createIngestClient, createSearchClient, type ErrorBody } from '@spywatcher/client';
import { sampleEvents } from '@spywatcher/events/fixtures';
import { buildApp as buildIngest } from '@spywatcher/ingest/app';
import { buildApp as buildSearch } from '@spywatcher/search/app';
import { createAuth, createMetricsRegistry, type ServiceInstance } from '@spywatcher/service';
import { createTestDatabase, type TestDatabase, testNatsNames, testNatsUrl } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderClientFiles, staleClientFiles } from './generate-client.ts';

const TOKEN = 'client-test-token-0123456789';
let db: TestDatabase;
let nats: NatsConnection;
const apps: ServiceInstance[] = [];
const urls: Record<'ingest' | 'search', string> = { ingest: '', search: '' };

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl() });
  const deps = (name: string) => ({
    sql: db.sql,
    nats,
    auth: createAuth([{ name: 'client', token: TOKEN, scopes: ['*'] }]),
    metrics: createMetricsRegistry(name),
    logger: false as const,
  });
  const ingest = await buildIngest({ ...deps('ingest'), names: testNatsNames('cli') });
  const search = await buildSearch(deps('search'));
  for (const [name, app] of [
    ['ingest', ingest],
    ['search', search],
  ] as const) {
    apps.push(app);
    urls[name] = await app.listen({ host: '127.0.0.1', port: 0 });
  }
});

afterAll(async () => {
  for (const app of apps) await app.close();
  await nats?.drain();
  await db?.drop();
});

describe('@spywatcher/client', () => {
  it('its generated types and documents are those the services serve now (npm run client:generate)', async () => {
    expect(await staleClientFiles(await renderClientFiles())).toEqual([]);
  });

  it('stores events through ingest and finds them through search, typed end to end', async () => {
    const ingest = createIngestClient({ baseUrl: urls.ingest, token: TOKEN });
    const search = createSearchClient({ baseUrl: urls.search, token: TOKEN });
    const events = sampleEvents();
    const stored = await ingest.POST('/v1/events', { body: [events.message] });
    expect(stored.response.status, JSON.stringify(stored.error)).toBe(200);
    expect(stored.data?.stored).toBe(1);

    const found = await search.GET('/v1/search/messages', {
      params: { query: { q: `from:${events.message.data.user_id}` } },
    });
    expect(found.response.status, JSON.stringify(found.error)).toBe(200);
    expect(found.data?.results.map((m) => m.id)).toContain(events.message.id);
  });

  it('answers errors as the typed error body', async () => {
    const anonymous = createSearchClient({ baseUrl: urls.search });
    const denied = await anonymous.GET('/v1/search/messages', { params: { query: { q: 'hello' } } });
    expect(denied.response.status).toBe(401);
    expect((denied.error as ErrorBody).error.code).toBe('UNAUTHORIZED');
  });

  it('the bot example publishes to JetStream and posts over HTTP with the client', async () => {
    const botNames = testNatsNames('bot');
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [fileURLToPath(new URL('../../libs/events/examples/bot.ts', import.meta.url))],
        {
          env: {
            ...process.env,
            NATS_URL: testNatsUrl(),
            NATS_STREAM: botNames.stream,
            NATS_SUBJECT_PREFIX: botNames.prefix,
            INGEST_URL: urls.ingest,
            INGEST_TOKEN: TOKEN,
          },
          timeout: 60_000,
        },
      );
      expect(stdout).toMatch(/message stored in the stream at seq \d+/);
      expect(stdout).toContain('over HTTP: 1 stored, 0 duplicate, 0 rejected');
    } finally {
      await (await jetstreamManager(nats)).streams.delete(botNames.stream).catch(() => false);
    }
  });
});
