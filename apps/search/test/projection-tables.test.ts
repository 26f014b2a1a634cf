import { connect } from '@nats-io/transport-node';
import { prepareTables } from '@spywatcher/projections';
import { createAuth } from '@spywatcher/service';
import { createTestDatabase, type TestDatabase, testNatsUrl } from '@spywatcher/testing';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { PROJECTIONS } from '../src/projections/definitions.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

describe('search read-model tables', () => {
  it('made by the migrations are adopted as they are where the declaration is still version 1, rows kept, no rebuild', async () => {
    await db.sql`
      insert into rm_user_channel_daily (guild_id, day, user_id, channel_id, events)
      values ('10000000000000001', '2026-11-02', 'kept', '20000000000000001', 3)
    `;
    for (const p of PROJECTIONS.filter((p) => p.version === 1)) {
      expect(await prepareTables(db.sql, p), p.name).toBe('adopted');
      expect(await prepareTables(db.sql, p), p.name).toBe('current');
    }
    const [row] = await db.sql<
      { events: number }[]
    >`select events from rm_user_channel_daily where user_id = 'kept'`;
    expect(row?.events).toBe(3);
    expect(await db.sql`select 1 from projection_rebuilds`).toHaveLength(0);
  });

  it('changed since the migrations (a raised version) are rebuilt, not migrated', async () => {
    const changed = PROJECTIONS.filter((p) => p.version > 1).map((p) => p.name);
    expect(changed).toEqual(['activity', 'clients']);
    for (const p of PROJECTIONS.filter((p) => p.version > 1)) {
      expect(await prepareTables(db.sql, p), p.name).toBe('rebuild');
    }
  });

  it('answer a question that needs the new version with 503 and Retry-After until the rebuild swaps them in', async () => {
    const nats = await connect({ servers: testNatsUrl() });
    const app = await buildApp({
      sql: db.sql,
      nats,
      auth: createAuth([{ name: 'analyst', token: 'analyst-token', scopes: ['analytics:read'] }]),
      metrics: new Registry(),
      logger: false,
    });
    try {
      // lurkers with a guild reads a new column, multi-client a new table.
      for (const question of ['lurkers', 'multi-client']) {
        const res = await app.inject({
          url: `/v1/analytics/${question}?from=2026-11-01&to=2026-11-28&guildId=10000000000000001`,
          headers: { authorization: 'Bearer analyst-token' },
        });
        expect(res.statusCode, question).toBe(503);
        expect(res.headers['retry-after'], question).toBeDefined();
        expect(res.json().error.message, question).toMatch(/being rebuilt/);
      }
    } finally {
      await app.close();
      await nats.close();
    }
  });
});
