import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createSql, type Sql } from '@spywatcher/db';
import { rebuildProjections, startProjectionRunner } from '@spywatcher/projections';
import { buildApp } from '@spywatcher/search/app';
import { generateEvents, insertEvents } from '@spywatcher/search/fixtures/analytics-seed';
import { PROJECTIONS } from '@spywatcher/search/projections/definitions';
import { createAuth, type ServiceInstance } from '@spywatcher/service';
import { createTestDatabase, type TestDatabase, testNatsUrl } from '@spywatcher/testing';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboard } from './dashboards/grafana.ts';
import { GUILD_VARIABLE, GUILDS_SQL, readModelsDashboard, TOP } from './dashboards/read-models-dashboard.ts';

// The read-models dashboard's panels, run as Grafana runs them: as spywatcher_grafana (migration
// 0160), with Grafana's macros and the guild variable filled in. Their numbers must be the API's.
const GUILD = '10000000000000001';
const FROM = '2026-10-05';
const TO = '2026-11-02';
const TOKEN = 'dashboard-test-token-0123456789';

interface SqlTarget {
  rawSql: string;
}
interface Panel {
  title: string;
  type: string;
  targets: SqlTarget[];
}

/** What Grafana's PostgreSQL datasource does to a panel's SQL before sending it. */
function expandMacros(sql: string, vars: { guild: string; from: string; to: string }): string {
  const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
  const out = sql
    .replaceAll('$__timeFrom()', quote(`${vars.from}T00:00:00Z`))
    .replaceAll('$__timeTo()', quote(`${vars.to}T23:59:59Z`))
    .replaceAll(GUILD_VARIABLE, quote(vars.guild));
  expect(out, 'a macro or variable this test does not fill in').not.toMatch(/\$__|\$\{|\$[a-z]/);
  return out;
}

let db: TestDatabase;
let nats: NatsConnection;
let app: ServiceInstance;
let grafana: Sql;
const panels = (dashboard(readModelsDashboard) as { panels: Panel[] }).panels;
const panel = (title: string) => panels.find((p) => p.title === title)!;
const run = async (title: string) =>
  JSON.parse(
    JSON.stringify(
      await grafana.unsafe(
        expandMacros(panel(title).targets[0]!.rawSql, { guild: GUILD, from: FROM, to: TO }),
      ),
    ),
  ) as Record<string, unknown>[];

async function api(name: string, query: Record<string, string | number>) {
  const qs = new URLSearchParams(
    Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]),
  ).toString();
  const res = await app.inject({
    method: 'GET',
    url: `/v1/analytics/${name}?${qs}`,
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { items: Record<string, unknown>[] }).items;
}

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl() });
  app = await buildApp({
    sql: db.sql,
    nats,
    auth: createAuth([{ name: 'dashboard-test', token: TOKEN, scopes: ['*'] }]),
    metrics: new Registry(),
    logger: false,
  });
  await insertEvents(db.sql, generateEvents({ events: 4000, start: '2026-10-01', days: 35 }), 1000);
  const runner = startProjectionRunner({ sql: db.sql, projections: PROJECTIONS, pollMs: 600_000 });
  await runner.runUntilCaughtUp(170_000);
  await runner.stop();
  // A rebuild swaps in new tables: the role must still read them afterwards.
  await rebuildProjections(db.sql, PROJECTIONS, { atOnce: 2 });
  const url = new URL(db.url);
  url.username = 'spywatcher_grafana';
  grafana = createSql({ url: url.toString(), applicationName: 'grafana-panel-test', max: 1 });
}, 240_000);

afterAll(async () => {
  await grafana?.end({ timeout: 5 });
  await app?.close();
  await nats?.close();
  await db?.drop();
});

describe('the read-models dashboard', () => {
  it('has a panel for every SQL target, each through the read-models datasource', () => {
    expect(panels.map((p) => p.title)).toEqual(
      expect.arrayContaining(['Activity by weekday and hour (UTC)', 'Top suspicion scores', 'Lurkers']),
    );
    for (const p of panels) {
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.rawSql, p.title).toBeTruthy();
    }
  });

  it('lists the guilds as the read-only role', async () => {
    const rows = await grafana.unsafe(GUILDS_SQL);
    expect(rows.map((r) => r.guild_id)).toContain(GUILD);
  });

  it('top suspicion scores are the API answer for the guild and window', async () => {
    const rows = await run('Top suspicion scores');
    expect(rows.length).toBeGreaterThan(0);
    expect(rows).toEqual(await api('suspicion', { guildId: GUILD, from: FROM, to: TO, limit: TOP }));
  });

  it('lurkers are the API answer for the guild and window', async () => {
    const rows = await run('Lurkers');
    expect(rows.length).toBeGreaterThan(0);
    expect(rows).toEqual(await api('lurkers', { guildId: GUILD, from: FROM, to: TO, limit: TOP }));
  });

  it("the heatmap is the guild's week, Monday first, with the API's hourly totals", async () => {
    const rows = await run('Activity by weekday and hour (UTC)');
    expect(rows.map((r) => r.weekday)).toEqual(['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun']);
    const cells = await api('heatmap', { guildId: GUILD, from: FROM, to: TO, limit: 168 });
    expect(cells.length).toBeGreaterThan(0);
    const names = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
    const expected = new Map(cells.map((c) => [`${names[c.weekday as number]} ${c.hour}`, c.total]));
    for (const row of rows) {
      for (let h = 0; h < 24; h++) {
        const value = row[String(h).padStart(2, '0')];
        expect(value, `${row.weekday} ${h}:00`).toBe(expected.get(`${row.weekday} ${h}`) ?? 0);
      }
    }
  });

  it('activity per day has a row per active day of the window', async () => {
    const rows = await run('Activity per day');
    expect(rows.length).toBeGreaterThan(20);
    expect(rows.every((r) => Number(r.messages) >= 0)).toBe(true);
  });

  it('the role reads the read models only, and writes nothing', async () => {
    await expect(grafana`select count(*) from message_events`).rejects.toThrow(/permission denied/);
    await expect(grafana`select count(*) from users`).rejects.toThrow(/permission denied/);
    await expect(grafana`delete from rm_user_daily`).rejects.toThrow(
      /read-only transaction|permission denied/,
    );
    const [setting] = await grafana<{ ro: string }[]>`show default_transaction_read_only`;
    expect(setting).toEqual({ default_transaction_read_only: 'on' });
  });
});
