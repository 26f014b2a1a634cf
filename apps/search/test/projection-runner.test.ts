import { connect, type NatsConnection } from '@nats-io/transport-node';
import { appendRows, ensurePartitions, type Sql } from '@spywatcher/db';
import { startProjectionRunner } from '@spywatcher/projections';
import { createAuth, type ServiceInstance } from '@spywatcher/service';
import { createTestDatabase, type TestDatabase, testNatsUrl } from '@spywatcher/testing';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { findProjection, PROJECTIONS } from '../src/projections/definitions.ts';
import { COLUMNS } from './analytics-seed.ts';

const TOKEN = 'projections-writer-token';
const asOps = { authorization: `Bearer ${TOKEN}` };
const READER = 'read-only-token-xxxxxxxx';
const DAY = new Date('2026-11-02T10:00:00Z');
let seq = 0;

// xmin is cluster-wide: another database's long writing transaction (a bulk load on a shared
// server) holds every projection back until it ends. Waiting is correct; the bound is generous.
const WAIT_MS = 170_000;

let db: TestDatabase;
let nats: NatsConnection;
let app: ServiceInstance;

function typingRow(user: string, at = DAY) {
  seq++;
  return [
    `${seq.toString(16).padStart(8, '0')}-1111-7000-8000-000000000000`,
    at,
    user,
    user,
    '20000000000000001',
    'general',
    '10000000000000001',
  ];
}

async function typingCount(sql: Sql, user: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select coalesce(sum(typing), 0)::int as n from rm_user_daily where user_id = ${user}
  `;
  return row!.n;
}

async function insertTyping(user: string, count: number) {
  await ensurePartitions(db.sql, 'typing', [DAY]);
  await db.sql.begin(async (tx) => {
    await appendRows(tx, {
      table: 'typing_events',
      columns: COLUMNS.typing,
      rows: Array.from({ length: count }, () => typingRow(user)),
    });
  });
}

async function until(check: () => Promise<boolean>, what: string) {
  for (let i = 0; i < 3400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl() });
  app = await buildApp({
    sql: db.sql,
    nats,
    auth: createAuth([
      {
        name: 'ops',
        token: TOKEN,
        scopes: ['projections:write', 'projections:read', 'analytics:read', 'metrics:read'],
      },
      { name: 'reader', token: READER, scopes: [] },
    ]),
    metrics: new Registry(),
    logger: false,
  });
  await ensurePartitions(db.sql, 'typing', [DAY]);
});

afterAll(async () => {
  await app?.close();
  await nats?.close();
  await db?.drop();
});

describe('projection runner', { timeout: 180_000 }, () => {
  it('reports checkpoint, events behind and seconds behind, over HTTP and as metrics', async () => {
    // A checkpoint past some events first, then events behind it.
    await insertTyping('caught-up', 2);
    const first = startProjectionRunner({ sql: db.sql, projections: PROJECTIONS, pollMs: 600_000 });
    await first.runUntilCaughtUp(WAIT_MS);
    await first.stop();
    await insertTyping('behind', 4);
    const before = (await app.inject({ url: '/v1/projections', headers: asOps })).json();
    const activity = before.projections.find((p: { name: string }) => p.name === 'activity');
    expect(activity.eventsBehind).toBe(4);
    expect(activity.secondsBehind).toBeGreaterThanOrEqual(0);
    expect(activity.checkpoints.find((c: { type: string }) => c.type === 'typing').tx).not.toBe('0');
    const metrics = await app.inject({ url: '/metrics', headers: asOps });
    expect(metrics.body).toMatch(/projection_events_behind\{projection="activity"[^}]*\} 4/);

    const runner = startProjectionRunner({ sql: db.sql, projections: PROJECTIONS, pollMs: 600_000 });
    await runner.runUntilCaughtUp(WAIT_MS);
    await runner.stop();
    const after = (await app.inject({ url: '/v1/projections', headers: asOps })).json();
    for (const p of after.projections) {
      expect(p.eventsBehind).toBe(0);
      expect(p.secondsBehind).toBe(0);
    }
  });
});

describe('rebuild', { timeout: 180_000 }, () => {
  it('needs the projections:write scope and a known projection', async () => {
    expect((await app.inject({ method: 'POST', url: '/v1/projections/activity/rebuild' })).statusCode).toBe(
      401,
    );
    const forbidden = await app.inject({
      method: 'POST',
      url: '/v1/projections/activity/rebuild',
      headers: { authorization: `Bearer ${READER}` },
    });
    expect(forbidden.statusCode).toBe(403);
    const unknown = await app.inject({
      method: 'POST',
      url: '/v1/projections/nope/rebuild',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.message).toMatch(/activity/);
  });

  it('refuses a second rebuild of the same projection while one runs (409)', async () => {
    await db.sql`
      insert into projection_rebuilds (id, projection, status, phase)
      values ('00000000-0000-4000-8000-000000000001', 'reactions', 'running', 'bulk 1/1 tables')
    `;
    const res = await app.inject({
      method: 'POST',
      url: '/v1/projections/reactions/rebuild',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.details.runningJobId).toBe('00000000-0000-4000-8000-000000000001');
    await db.sql`delete from projection_rebuilds where projection = 'reactions'`;
  });

  it('rebuilds from the log into new tables, swaps them in, and the runner carries on', async () => {
    const runner = startProjectionRunner({ sql: db.sql, projections: PROJECTIONS, pollMs: 600_000 });
    await runner.runUntilCaughtUp(WAIT_MS);
    const expected = await typingCount(db.sql, 'behind');
    // A read model that drifted (say, a bug fixed since): the rebuild restores it from the log.
    await db.sql`update rm_user_daily set typing = 999 where user_id = 'behind'`;

    const res = await app.inject({
      method: 'POST',
      url: '/v1/projections/activity/rebuild',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.statusCode).toBe(202);
    const job = res.json();
    expect(res.headers.location).toBe(job.url);
    let status = job;
    await until(async () => {
      status = (await app.inject({ url: job.url, headers: asOps })).json();
      return status.status !== 'running';
    }, 'the rebuild to finish');
    expect(status.status, status.error).toBe('succeeded');
    expect(status.phase).toBe('done');
    expect(status.report.tables).toBe(4); // rm_user_daily and rm_role_daily, each with its weekly roll-up
    expect(await typingCount(db.sql, 'behind')).toBe(expected);
    const leftovers = await db.sql`select relname from pg_class where strpos(relname, '__') > 0`;
    expect(leftovers).toHaveLength(0);

    // The live runner keeps applying into the swapped-in table.
    await insertTyping('after-rebuild', 2);
    await runner.runUntilCaughtUp(WAIT_MS);
    expect(await typingCount(db.sql, 'after-rebuild')).toBe(2);
    await runner.stop();
    const status404 = await app.inject({ url: `/v1/projections/heatmap/rebuilds/${job.id}`, headers: asOps });
    expect(status404.statusCode).toBe(404);
  });

  it('keeps serving the old tables while a rebuild is building', async () => {
    const projection = findProjection('activity')!;
    // Hold the projection's lock the way a live batch does: the swap must wait for it, and
    // meanwhile reads are answered from the current tables.
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => {
      locked = r;
    });
    const holder = db.sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext(${`projection:${projection.name}`}))`;
      locked();
      await held;
    });
    await isLocked;
    const res = await app.inject({
      method: 'POST',
      url: '/v1/projections/activity/rebuild',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const job = res.json();
    await until(async () => {
      const s = (await app.inject({ url: job.url, headers: asOps })).json();
      return s.phase === 'swapping';
    }, 'the rebuild to reach the swap');
    const during = await app.inject({
      url: '/v1/analytics/ghosts?from=2026-11-01&to=2026-11-03&minTyping=1',
      headers: asOps,
    });
    expect(during.statusCode).toBe(200);
    expect(during.json().items.length).toBeGreaterThan(0);
    release();
    await holder;
    await until(
      async () => (await app.inject({ url: job.url, headers: asOps })).json().status === 'succeeded',
      'the swap',
    );
  });
});
