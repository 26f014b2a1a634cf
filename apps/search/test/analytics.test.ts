import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Queryable, Sql } from '@spywatcher/db';
import { planChunks, rebuildProjections, startProjectionRunner } from '@spywatcher/projections';
import { createAuth, type ServiceInstance } from '@spywatcher/service';
import { createTestDatabase, type TestDatabase, testNatsUrl } from '@spywatcher/testing';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import {
  type AnalyticsName,
  type AnalyticsParams,
  createAnalyticsSql,
  READ_MODEL_QUERIES,
  runAnalytics,
  splitWindow,
} from '../src/projections/analytics.ts';
import { PROJECTIONS } from '../src/projections/definitions.ts';
import { RAW_QUERIES } from './analytics-raw.ts';
import { generateEvents, insertEvents } from './analytics-seed.ts';

// Every endpoint's answer must equal the same question asked of the raw event tables.
// The seeded data set spans 42 days, 3 guilds, 40 users with archetypes (see analytics-seed.ts).
const GUILD = '10000000000000001';
const CASES: { name: AnalyticsName; query: Record<string, string | number> }[] = [
  { name: 'ghosts', query: {} },
  { name: 'ghosts', query: { guildId: GUILD, from: '2026-10-05', to: '2026-10-30', minTyping: 3 } },
  { name: 'lurkers', query: {} },
  { name: 'lurkers', query: { guildId: GUILD, from: '2026-10-10', to: '2026-10-20' } },
  { name: 'heatmap', query: { guildId: GUILD } },
  { name: 'heatmap', query: {} },
  { name: 'heatmap', query: { channelId: '20000000000000100', from: '2026-10-02', to: '2026-10-25' } },
  { name: 'heatmap', query: { userId: '300000000000000002', guildId: '10000000000000002' } },
  { name: 'channel-diversity', query: {} },
  { name: 'channel-diversity', query: { guildId: GUILD, from: '2026-10-03', to: '2026-10-09', limit: 5 } },
  { name: 'multi-client', query: {} },
  { name: 'multi-client', query: { guildId: GUILD, from: '2026-10-15', to: '2026-11-11' } },
  { name: 'reaction-stats', query: {} },
  { name: 'reaction-stats', query: { guildId: GUILD, minReactions: 3 } },
  // Medians are read for the page's users only: a short page must still rank and answer alike.
  { name: 'reaction-stats', query: { limit: 3, from: '2026-10-05', to: '2026-10-30' } },
  { name: 'role-drift', query: {} },
  { name: 'role-drift', query: { guildId: GUILD, from: '2026-10-01', to: '2026-10-21' } },
  { name: 'behavior-shifts', query: {} },
  {
    name: 'behavior-shifts',
    query: { guildId: GUILD, threshold: 0.3, from: '2026-10-08', to: '2026-11-04' },
  },
  { name: 'client-drift', query: {} },
  { name: 'client-drift', query: { guildId: GUILD, threshold: 0.1 } },
  { name: 'suspicion', query: {} },
  { name: 'suspicion', query: { guildId: GUILD, minScore: 10, from: '2026-10-20', to: '2026-11-11' } },
];
const DEFAULT_WINDOW = { from: '2026-10-01', to: '2026-11-11' };
const ANALYST = 'analyst-token-0123456789';
const asAnalyst = { authorization: `Bearer ${ANALYST}` };

// xmin is cluster-wide: another database's long writing transaction (a bulk load on a shared
// server) holds every projection back until it ends. Waiting is correct; the bound is generous.
const WAIT_MS = 170_000;

let db: TestDatabase;
let nats: NatsConnection;
let app: ServiceInstance;
let analyticsSql: Sql;

async function endpoint(name: string, query: Record<string, string | number>) {
  const qs = new URLSearchParams(
    Object.entries({ ...DEFAULT_WINDOW, ...query }).map(([k, v]): [string, string] => [k, String(v)]),
  ).toString();
  const res = await app.inject({ method: 'GET', url: `/v1/analytics/${name}?${qs}`, headers: asAnalyst });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as { items: unknown[]; explanation: string; window: { days: number } };
}

async function raw(name: AnalyticsName, query: Record<string, string | number>) {
  const params = { limit: name === 'heatmap' ? 168 : 50, ...DEFAULT_WINDOW, ...query } as AnalyticsParams;
  // JSON round trip: the same serialisation the HTTP answer went through.
  return JSON.parse(JSON.stringify(await runAnalytics(db.sql, RAW_QUERIES, name, params)));
}

async function expectAllEqualRaw() {
  const nonEmpty = new Set<string>();
  for (const c of CASES) {
    const answer = await endpoint(c.name, c.query);
    expect(answer.items, `${c.name} ${JSON.stringify(c.query)}`).toEqual(await raw(c.name, c.query));
    if (answer.items.length > 0) nonEmpty.add(c.name);
  }
  // Equality on empty answers would prove nothing: every question must have answers somewhere.
  expect([...nonEmpty].sort()).toEqual([...new Set(CASES.map((c) => c.name))].sort());
}

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl() });
  // As main.ts wires it (the transaction fallback without this pool: projection-runner.test.ts).
  analyticsSql = createAnalyticsSql({ DATABASE_URL: db.url, DATABASE_STATEMENT_TIMEOUT_MS: 30_000 });
  app = await buildApp({
    sql: db.sql,
    analyticsSql,
    nats,
    auth: createAuth([{ name: 'analyst', token: ANALYST, scopes: ['analytics:read'] }]),
    metrics: new Registry(),
    logger: false,
  });
  await insertEvents(db.sql, generateEvents({ events: 6000, start: '2026-10-01', days: 42 }), 700);
});

afterAll(async () => {
  await app?.close();
  await nats?.close();
  await db?.drop();
});

describe('analytics endpoints', { timeout: 180_000 }, () => {
  it('answer exactly what the raw event tables answer, after live tailing in small batches', async () => {
    const runner = startProjectionRunner({
      sql: db.sql,
      projections: PROJECTIONS,
      batchSize: 173,
      pollMs: 600_000,
    });
    await runner.runUntilCaughtUp(WAIT_MS);
    await runner.stop();
    await expectAllEqualRaw();
  });

  it('still answer exactly the same after every projection is rebuilt from the log', async () => {
    // Six weeks of events: the bulk pass splits them into time chunks filled side by side, and
    // two projections rebuild at once.
    for (const p of PROJECTIONS) expect((await planChunks(db.sql, p, 2)).length).toBeGreaterThan(1);
    const reports = await rebuildProjections(db.sql, PROJECTIONS, {
      batchSize: 500,
      concurrency: 2,
      atOnce: 2,
    });
    expect(reports.map((r) => r.projection)).toEqual(PROJECTIONS.map((p) => p.name));
    await expectAllEqualRaw();
  });

  it('read whole ISO weeks from the weekly roll-ups and only the edge days from the daily tables', () => {
    // 2026-10-05 is a Monday.
    expect(splitWindow('2026-09-29', '2026-10-26')).toEqual({
      days: [
        ['2026-09-29', '2026-10-04'],
        ['2026-10-26', '2026-10-26'],
      ],
      weeks: [['2026-10-05', '2026-10-19']],
      minus: [],
    });
    // Subtracting: the first week is its roll-up row minus its Monday.
    expect(splitWindow('2026-09-29', '2026-10-26', true)).toEqual({
      days: [['2026-10-26', '2026-10-26']],
      weeks: [['2026-09-28', '2026-10-19']],
      minus: [['2026-09-28', '2026-09-28']],
    });
    expect(splitWindow('2026-10-05', '2026-10-11')).toEqual({
      days: [],
      weeks: [['2026-10-05', '2026-10-05']],
      minus: [],
    });
    expect(splitWindow('2026-10-06', '2026-10-12')).toEqual({
      days: [['2026-10-06', '2026-10-12']],
      weeks: [],
      minus: [],
    });
  });

  it('leave out groups whose only events fall on days a week row has subtracted', async () => {
    // DEFAULT_WINDOW starts on Thursday 2026-10-01: its first week is the roll-up row of Monday
    // 2026-09-28 minus Monday to Wednesday. This user acts only on that Tuesday, in every table.
    const at = new Date('2026-09-29T12:00:00Z');
    const user = '399999999999999999';
    const userColumn = { reaction_time: 4, message: 3, deleted_message: 3 } as Record<string, number>;
    // A seed of its own: the same ids as the main data set would be the same events (one id, one event).
    const rows = [
      ...generateEvents({ events: 400, start: '2026-09-29', days: 1, guilds: 1, users: 10, seed: 43 }),
    ].map((e) => {
      const row = [...e.row];
      row[1] = at;
      row[userColumn[e.type] ?? 2] = user;
      return { ...e, occurredAt: at, row };
    });
    // And on a client of its own inside the window, before and in the last week: the other
    // clients' sums are then zero for a user who does count (client-drift must not list them).
    // Web before, mobile in the last week: a distance of 1, so client-drift lists the user.
    const presence = (id: string, day: string, client: string) => ({
      type: 'presence' as const,
      occurredAt: new Date(`${day}T09:00:00Z`),
      row: [id, new Date(`${day}T09:00:00Z`), user, 'edge', '10000000000000000', [client], 'online'],
    });
    rows.push(
      presence('ffffffff-0000-7000-8000-000000000001', '2026-10-10', 'web'),
      presence('ffffffff-0000-7000-8000-000000000002', '2026-11-08', 'mobile'),
    );
    // A second user, half web and half mobile before, only mobile in the last week: 0.5.
    const half = '399999999999999998';
    for (const [i, day, client] of [
      [3, '2026-10-10', 'web'],
      [4, '2026-10-11', 'mobile'],
      [5, '2026-11-08', 'mobile'],
    ] as const) {
      const p = presence(`ffffffff-0000-7000-8000-00000000000${i}`, day, client);
      p.row[2] = half;
      rows.push(p);
    }
    await insertEvents(db.sql, rows, 100);
    const runner = startProjectionRunner({ sql: db.sql, projections: PROJECTIONS, pollMs: 600_000 });
    await runner.runUntilCaughtUp(WAIT_MS);
    await runner.stop();
    const [week] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from rm_user_weekly where user_id = ${user} and day = '2026-09-28'
    `;
    expect(week!.n).toBeGreaterThan(0);
    await expectAllEqualRaw();
    const drift = await endpoint('client-drift', { limit: 500 });
    expect(drift.items).toContainEqual(
      // Only the clients seen in the window: not those of the subtracted Tuesday alone.
      expect.objectContaining({
        userId: user,
        distance: 1,
        thisWeek: { mobile: 1, web: 0 },
        previousWeeks: { mobile: 0, web: 1 },
      }),
    );
    expect(drift.items).toContainEqual({
      userId: half,
      distance: 0.5,
      thisWeek: { mobile: 1, web: 0 },
      previousWeeks: { mobile: 0.5, web: 0.5 },
    });
  });

  it('run on a pool whose sessions carry the analytics planner settings', async () => {
    const [row] = await analyticsSql<{ jit: string; plan: string; workers: string }[]>`
      select current_setting('jit') as jit, current_setting('plan_cache_mode') as plan,
        current_setting('max_parallel_workers_per_gather') as workers
    `;
    expect(row).toEqual({ jit: 'off', plan: 'force_custom_plan', workers: '0' });
  });

  it('set the same planner settings in their transaction on a pool without them (PgBouncer)', async () => {
    const settings = (q: Queryable) =>
      q<{ jit: string; plan: string; workers: string }[]>`
        select current_setting('jit') as jit, current_setting('plan_cache_mode') as plan,
          current_setting('max_parallel_workers_per_gather') as workers`;
    const [server] = await settings(db.sql);
    const params = { ...DEFAULT_WINDOW, limit: 5 };
    // set_config(..., true) lasts until the transaction ends: read them inside it, just after.
    const [readModel] = await db.sql.begin(async (tx) => {
      await runAnalytics(tx, READ_MODEL_QUERIES, 'ghosts', params);
      return settings(tx);
    });
    expect(readModel).toEqual({ jit: 'off', plan: 'force_custom_plan', workers: '0' });
    // Raw-table questions scan far more: they keep the server's parallel workers.
    const [raw] = await db.sql.begin(async (tx) => {
      await runAnalytics(tx, RAW_QUERIES, 'ghosts', params);
      return settings(tx);
    });
    expect(raw).toEqual({ jit: 'off', plan: 'force_custom_plan', workers: server!.workers });
  });

  it('explain their numbers and check the window', async () => {
    const answer = await endpoint('ghosts', {});
    expect(answer.explanation).toMatch(/ratio/);
    expect(answer.window.days).toBe(42);
    const short = await app.inject({
      url: '/v1/analytics/behavior-shifts?from=2026-10-01&to=2026-10-10',
      headers: asAnalyst,
    });
    expect(short.statusCode).toBe(400);
    expect(short.json().error.message).toMatch(/at least 14 days/);
    const reversed = await app.inject({
      url: '/v1/analytics/lurkers?from=2026-10-10&to=2026-10-01',
      headers: asAnalyst,
    });
    expect(reversed.statusCode).toBe(400);
    const badLimit = await app.inject({ url: '/v1/analytics/lurkers?limit=0', headers: asAnalyst });
    expect(badLimit.json().error.code).toBe('VALIDATION_FAILED');
    const openapi = (await app.inject({ url: '/openapi.json' })).json();
    for (const c of CASES) expect(openapi.paths[`/v1/analytics/${c.name}`]).toBeDefined();
    expect(openapi.paths['/v1/projections/{name}/rebuild'].post.security).toEqual([
      { bearerAuth: ['projections:write'] },
    ]);
  });
});
