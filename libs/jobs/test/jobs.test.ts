import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { createSql, jsonb, type Sql } from '@spywatcher/db';
import { type JobColumns, JobHeartbeat, JobTable } from '@spywatcher/jobs';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

let db: TestDatabase;
/** Two "instances": each its own connection pool and owner name. */
let sqlA: Sql;
let sqlB: Sql;
let a: JobTable;
let b: JobTable;

type Row = JobColumns & { progress: { percent: number } };

beforeAll(async () => {
  db = await createTestDatabase();
  // the common columns (README.md) and one of the kind's own
  await db.sql`
    create table test_jobs (
      id uuid primary key,
      status text not null default 'queued',
      error text,
      owner text,
      heartbeat_at timestamptz,
      cancel_requested_at timestamptz,
      started_at timestamptz,
      finished_at timestamptz,
      updated_at timestamptz not null default now(),
      progress jsonb not null default '{"percent": 0}'
    )
  `;
  sqlA = createSql({ url: db.url, applicationName: 'jobs-test-a', max: 2 });
  sqlB = createSql({ url: db.url, applicationName: 'jobs-test-b', max: 2 });
  a = new JobTable({ sql: sqlA, table: 'test_jobs', label: 'test', owner: 'host-a:1:aaaa' });
  b = new JobTable({ sql: sqlB, table: 'test_jobs', label: 'test', owner: 'host-b:2:bbbb' });
});

afterAll(async () => {
  await sqlA?.end();
  await sqlB?.end();
  await db?.drop();
});

beforeEach(async () => {
  await db.sql`delete from test_jobs`;
});

/** Makes a job's heartbeat `seconds` old, as if its owner had stopped beating that long ago. */
async function silence(id: string, seconds: number): Promise<void> {
  await db.sql`update test_jobs set heartbeat_at = now() - ${seconds} * interval '1 second' where id = ${id}`;
}

async function row(id: string): Promise<Row> {
  const [r] = await db.sql<Row[]>`select * from test_jobs where id = ${id}`;
  return r!;
}

describe('JobTable', () => {
  it('creates a job under its owner, and only one of two instances claims a queued job', async () => {
    const id = randomUUID();
    const created = await a.create({ id });
    expect(created).toMatchObject({ id, status: 'queued', owner: 'host-a:1:aaaa' });
    expect(created.heartbeat_at).toBeInstanceOf(Date);
    const claims = await Promise.all([a.claim(id), b.claim(id)]);
    expect(claims.filter(Boolean)).toHaveLength(1);
    const claimed = await row(id);
    expect(claimed.status).toBe('running');
    expect(claimed.owner).toBe(claims[0] ? 'host-a:1:aaaa' : 'host-b:2:bbbb');
  });

  it('records progress and the end of a running job, and nothing once it has ended', async () => {
    const id = randomUUID();
    await a.create({ id, status: 'running' });
    expect(await a.progress(id, { progress: jsonb(sqlA, { percent: 40 }) })).toBe(true);
    expect((await row(id)).progress).toEqual({ percent: 40 });
    expect(await a.finish(id, { status: 'failed', error: 'disk full' })).toBe(true);
    expect(await a.finish(id, { status: 'succeeded' })).toBe(false);
    expect(await a.progress(id, { progress: jsonb(sqlA, { percent: 90 }) })).toBe(false);
    expect(await row(id)).toMatchObject({ status: 'failed', error: 'disk full', progress: { percent: 40 } });
    expect((await row(id)).finished_at).toBeInstanceOf(Date);
  });
});

describe('the abandon rule', () => {
  it("fails another instance's job whose heartbeat is older than the threshold, never a fresh one or its own", async () => {
    const stale = randomUUID();
    const fresh = randomUUID();
    const mine = randomUUID();
    await a.create({ id: stale, status: 'running' });
    await a.create({ id: fresh, status: 'running' });
    await b.create({ id: mine, status: 'running' });
    await silence(stale, 120);
    await silence(mine, 120);

    const abandoned = await b.abandon(60_000);
    expect(abandoned.map((j) => j.id)).toEqual([stale]);
    expect(await row(stale)).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(
        /^abandoned: no heartbeat from host-a:1:aaaa for 1[12]\d s \(stopped, killed or cut off\)$/,
      ),
    });
    expect((await row(fresh)).status).toBe('running');
    expect((await row(mine)).status).toBe('running');
    // the old owner comes back: what it writes does not revive the job
    expect(await a.finish(stale, { status: 'succeeded' })).toBe(false);
    expect((await row(stale)).status).toBe('failed');
  });

  it('fails at once a job whose owner was a process on this host that no longer exists', async () => {
    const id = randomUUID();
    // pid 2^22+1 is above Linux's pid_max: that process cannot exist
    const dead = new JobTable({
      sql: sqlA,
      table: 'test_jobs',
      label: 'test',
      owner: `${hostname()}:4194305:x`,
    });
    await dead.create({ id, status: 'running' });
    const abandoned = await b.abandon(60_000);
    expect(abandoned.map((j) => j.id)).toEqual([id]);
    expect((await row(id)).error).toBe(
      `abandoned: the test process that ran it (${hostname()}:4194305:x) is gone (stopped or killed)`,
    );
  });

  it('two instances looking at once fail each job once and clean each up once', async () => {
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const dead = new JobTable({ sql: db.sql, table: 'test_jobs', label: 'test', owner: 'host-c:3:cccc' });
    for (const id of ids) await dead.create({ id, status: 'running' });
    for (const id of ids) await silence(id, 300);

    const cleaned: { by: string; id: string }[] = [];
    const hook = (by: string) => async (job: JobColumns) => {
      cleaned.push({ by, id: job.id });
    };
    const beatA = new JobHeartbeat({ jobs: a, running: () => [], cleanup: hook('a') });
    const beatB = new JobHeartbeat({ jobs: b, running: () => [], cleanup: hook('b') });

    // Both UPDATEs start while a third session holds the rows, so they really meet on them.
    const locker = await db.sql.reserve();
    try {
      await locker`begin`;
      await locker`select id from test_jobs for update`;
      const sweeps = Promise.all([beatA.sweep(), beatB.sweep()]);
      for (;;) {
        const [{ waiting }] = (await db.sql`
          select count(*)::int as waiting from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'
            and application_name in ('jobs-test-a', 'jobs-test-b')
        `) as unknown as [{ waiting: number }];
        if (waiting === 2) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await locker`commit`;
      const [fromA, fromB] = await sweeps;
      expect([...fromA, ...fromB].map((j) => j.id).sort()).toEqual([...ids].sort());
    } finally {
      locker.release();
    }
    expect(cleaned.map((c) => c.id).sort()).toEqual([...ids].sort());
    for (const id of ids) expect((await row(id)).status).toBe('failed');
    // a later look finds nothing more to do
    expect(await beatA.sweep()).toEqual([]);
    expect(cleaned).toHaveLength(3);
  });
});

describe('JobHeartbeat', () => {
  it('keeps a running job alive: its renewed heartbeat is not abandoned by another instance', async () => {
    const id = randomUUID();
    await a.create({ id, status: 'running' });
    await silence(id, 120);
    const beatA = new JobHeartbeat({ jobs: a, running: () => [id], everyMs: 50, abandonAfterMs: 60_000 });
    beatA.start();
    try {
      for (;;) {
        const [r] = await db.sql<{ fresh: boolean }[]>`
          select heartbeat_at > now() - interval '60 seconds' as fresh from test_jobs where id = ${id}
        `;
        if (r!.fresh) break;
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await beatA.stop();
    }
    expect(await b.abandon(60_000)).toEqual([]);
    expect((await row(id)).status).toBe('running');
  });

  it('hands a cancel requested by another instance to the owner at its next beat', async () => {
    const id = randomUUID();
    const other = randomUUID();
    await a.create({ id, status: 'running' });
    await a.create({ id: other, status: 'running' });
    const requested: string[] = [];
    const beatA = new JobHeartbeat({
      jobs: a,
      running: () => [id, other],
      onCancelRequested: (x) => requested.push(x),
    });
    await beatA.beat();
    expect(requested).toEqual([]);
    expect(await b.requestCancel(id)).toBe(true);
    await beatA.beat();
    expect(requested).toEqual([id]);
    await a.finish(id, { status: 'cancelled', error: 'cancelled on request' });
    expect(await b.requestCancel(id)).toBe(false);
    expect(await b.requestCancel(randomUUID())).toBe(false);
  });

  it('a cleanup that fails is reported with its job, and the job stays failed', async () => {
    const id = randomUUID();
    await a.create({ id, status: 'running' });
    await silence(id, 120);
    const errors: { message: string; job?: string }[] = [];
    const beatB = new JobHeartbeat({
      jobs: b,
      running: () => [],
      cleanup: async () => {
        throw new Error('scratch database busy');
      },
      onError: (error, job) => errors.push({ message: (error as Error).message, job: job?.id }),
    });
    expect((await beatB.sweep()).map((j) => j.id)).toEqual([id]);
    expect(errors).toEqual([{ message: 'scratch database busy', job: id }]);
    expect((await row(id)).status).toBe('failed');
  });

  it('refuses an abandon threshold that is not longer than the heartbeat interval', () => {
    expect(
      () => new JobHeartbeat({ jobs: a, running: () => [], everyMs: 5000, abandonAfterMs: 5000 }),
    ).toThrow(/abandonAfterMs \(5000\) must be longer than the interval everyMs \(5000\)/);
  });
});
