import { createSql, type Sql } from '@spywatcher/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Finding } from '../src/health.ts';
import { bearer, type Harness, harness, seed, TOKENS } from './helpers.ts';

let h: Harness;
let other: Sql;

beforeAll(async () => {
  h = await harness();
  await seed(h.db.sql, 200);
  other = createSql({ url: h.db.url, applicationName: 'staged-session', max: 4, statementTimeoutMs: 0 });
  const sql = h.db.sql;
  // mixed-case names on purpose: the estimates must not go through regclass text
  await sql`create table "MixedCase" (id serial primary key, v int, w text unique)`;
  await sql`insert into "MixedCase" (v, w) select i, 'w' || i from generate_series(1, 1000) i`;
  await sql`create index mixed_v_idx on "MixedCase" (v)`;
  await sql`create index mixed_v_copy_idx on "MixedCase" (v)`;
  await sql`create index mixed_v_w_idx on "MixedCase" (v, w)`;
  await sql`create table "Bloated" (id int, payload text) with (autovacuum_enabled = false)`;
  await sql`insert into "Bloated" select i, repeat('x', 120) from generate_series(1, 100000) i`;
  await sql`delete from "Bloated" where id % 10 <> 0`;
  await sql`analyze "Bloated"`;
  await sql`analyze message_events`;
  await sql`select pg_stat_force_next_flush()`;
});
afterAll(async () => {
  await other?.end({ timeout: 1 });
  await h?.close();
});

async function health(query = ''): Promise<{ findings: Finding[]; [k: string]: unknown }> {
  const res = await h.app.inject({
    method: 'GET',
    url: `/v1/database/health${query}`,
    headers: bearer(TOKENS.reader),
  });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}
const find = (r: { findings: Finding[] }, check: string, subject?: string | RegExp) =>
  r.findings.filter(
    (f) =>
      f.check === check &&
      (subject === undefined ||
        (typeof subject === 'string' ? f.subject === subject : subject.test(f.subject))),
  );

async function until<T>(probe: () => Promise<T | undefined | false>, what: string): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await probe();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('health report', () => {
  it('finds an unused index and duplicate/redundant ones, never primary keys or unique constraints', async () => {
    const r = await health();
    expect(find(r, 'unused_index', 'public.mixed_v_idx')).toHaveLength(1);
    expect(find(r, 'unused_index', 'public.mixed_v_idx')[0]!.action).toMatch(/DROP INDEX CONCURRENTLY/);
    expect(find(r, 'unused_index', /MixedCase_pkey|MixedCase_w_key/)).toEqual([]);
    expect(find(r, 'duplicate_index', 'public.mixed_v_copy_idx')).toHaveLength(1);
    expect(find(r, 'redundant_index', /public\.mixed_v(_copy)?_idx/).length).toBeGreaterThanOrEqual(1);
    // partition indexes are rolled up into their parent: one finding for the event log index
    expect(find(r, 'unused_index', /_p\d{8}_/)).toEqual([]);
    const u = r.unusedIndexes as { statsResetAt: string | null };
    expect(u).toHaveProperty('statsResetAt');
  });

  it('finds a bloated mixed-case table after a mass delete, with dead tuples, and estimates partitions', async () => {
    const r = await health();
    const dead = find(r, 'dead_tuples', 'public.Bloated');
    expect(dead).toHaveLength(1);
    expect(dead[0]!.message).toMatch(/90000 dead tuples/);
    const bloat = find(r, 'table_bloat', 'public.Bloated');
    expect(bloat).toHaveLength(1);
    expect(bloat[0]!.message).toMatch(/about (8\d|9\d)%/);
    const tables = (r.bloat as { tables: { table: string; parent: string | null }[] }).tables;
    expect(tables.some((t) => t.table === 'Bloated')).toBe(true);
    const sizes = r.sizes as { tables: { table: string; partitioned: boolean; partitions: number }[] };
    expect(sizes.tables.find((t) => t.table === 'message_events')).toMatchObject({ partitioned: true });
    expect(sizes.tables.find((t) => t.table === 'message_events')!.partitions).toBeGreaterThanOrEqual(4);
  });

  it('finds a long pg_sleep query', async () => {
    const sleeping = other`select pg_sleep(20)`.catch(() => null);
    const pid = await until(async () => {
      const [row] = await h.db.sql<{ pid: number }[]>`
        select pid from pg_stat_activity where query like 'select pg_sleep(20)%' and state = 'active'
          and now() - query_start > interval '300 milliseconds'`;
      return row?.pid;
    }, 'pg_sleep to run');
    try {
      const r = await health('?longQueryMs=250');
      const long = find(r, 'long_query', `pid ${pid}`);
      expect(long).toHaveLength(1);
      expect(long[0]!.message).toContain('pg_sleep');
      expect(long[0]!.action).toContain(`pg_cancel_backend(${pid})`);
    } finally {
      await h.db.sql`select pg_cancel_backend(${pid})`;
      await sleeping;
    }
  });

  it('finds a lock held by another session, and that session idle in its transaction', async () => {
    const holder = await other.reserve();
    await holder`begin`;
    await holder`lock table "MixedCase" in access exclusive mode`;
    const [{ pid: holderPid }] = (await holder`select pg_backend_pid() as pid`) as unknown as [
      { pid: number },
    ];
    const waiter = other`select count(*) from "MixedCase"`.catch(() => null);
    try {
      await until(async () => {
        const [row] = await h.db
          .sql`select 1 from pg_stat_activity where wait_event_type = 'Lock' and application_name = 'staged-session'`;
        return row;
      }, 'a session waiting on the lock');
      await new Promise((r) => setTimeout(r, 250));
      const r = await health('?idleInTransactionMs=200');
      const blocking = find(r, 'blocking_lock');
      // The report covers the whole server: other test files' sessions may be waiting too.
      expect(blocking.map((b) => b.message)).toContainEqual(
        expect.stringContaining(`held by pid ${holderPid}`),
      );
      expect(find(r, 'idle_in_transaction', `pid ${holderPid}`)).toHaveLength(1);
    } finally {
      await holder`rollback`;
      holder.release();
      await waiter;
    }
  });

  it('reports connections, cache, wraparound, partition coverage and backup age, each finding with severity and action', async () => {
    const r = await health();
    const c = r.connections as {
      max: number;
      total: number;
      byState: Record<string, number>;
      byApplication: Record<string, number>;
    };
    expect(c.max).toBeGreaterThan(0);
    expect(c.total).toBeGreaterThan(0);
    expect(Object.keys(c.byApplication).length).toBeGreaterThan(0);
    expect(r.wraparound).toMatchObject({ databaseAge: expect.any(Number) });
    const parts = r.partitions as { table: string; current: boolean; ahead: number }[];
    expect(parts.find((p) => p.table === 'message_events')).toMatchObject({ current: true, ahead: 3 });
    expect(find(r, 'backup_age')[0]).toMatchObject({
      severity: 'critical',
      message: `there is no backup of ${h.db.name}`,
    });
    for (const f of r.findings) {
      expect(['info', 'warning', 'critical']).toContain(f.severity);
      expect(f.action.length).toBeGreaterThan(5);
    }
  });

  it('exposes the report as Prometheus metrics', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/metrics', headers: bearer(TOKENS.reader) });
    expect(res.body).toMatch(/^spywatcher_db_health_findings\{[^}]*check="dead_tuples"[^}]*\} [1-9]/m);
    expect(res.body).toMatch(/^spywatcher_db_max_connections\{[^}]*\} \d+/m);
    expect(res.body).toMatch(/^spywatcher_db_dead_tuples\{[^}]*table="public.Bloated"[^}]*\} 90000/m);
    expect(res.body).toMatch(/^spywatcher_db_partitions_ahead\{[^}]*table="message_events"[^}]*\} 3/m);
  });
});

describe('maintenance', () => {
  it('dry run: plans what needs a vacuum, with the reason, and runs nothing', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/maintenance/vacuum',
      headers: bearer(TOKENS.writer),
      payload: { dryRun: true },
    });
    expect(res.statusCode, res.body).toBe(200);
    const plan = res.json();
    expect(plan.scope).toBe('all');
    const step = plan.steps.find((s: { target: string }) => s.target === 'public.Bloated');
    expect(step.statement).toBe('vacuum (analyze) "public"."Bloated"');
    expect(step.reason).toMatch(/90000 dead tuples \(\d+%\), last vacuum never, estimated bloat (8|9)\d%/);
    expect(plan.skipped.some((s: { target: string }) => s.target === 'public.MixedCase')).toBe(true);
    const [row] = await h.db
      .sql`select n_dead_tup::int as dead from pg_stat_user_tables where relname = 'Bloated'`;
    expect(row!.dead).toBe(90000);
  });

  it('rejects unknown tables before starting a job', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/maintenance/analyze',
      headers: bearer(TOKENS.writer),
      payload: { tables: ['nope'] },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toContain('nope');
  });

  it('one job of a kind at a time; a running job is cancelled through pg_cancel_backend', async () => {
    const holder = await other.reserve();
    await holder`begin`;
    await holder`lock table "Bloated" in share update exclusive mode`;
    try {
      const first = await h.app.inject({
        method: 'POST',
        url: '/v1/maintenance/vacuum',
        headers: bearer(TOKENS.writer),
        payload: { tables: ['Bloated'] },
      });
      expect(first.statusCode, first.body).toBe(202);
      const id = first.json().job.id;
      await until(async () => {
        const [row] = await h.db
          .sql`select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like 'vacuum%'`;
        return row;
      }, 'vacuum to wait for the lock');
      const second = await h.app.inject({
        method: 'POST',
        url: '/v1/maintenance/vacuum',
        headers: bearer(TOKENS.writer),
        payload: { tables: ['Bloated'] },
      });
      expect(second.statusCode).toBe(409);
      expect(second.json().error.details.jobId).toBe(id);
      const cancel = await h.app.inject({
        method: 'POST',
        url: `/v1/jobs/${id}/cancel`,
        headers: bearer(TOKENS.writer),
      });
      expect(cancel.statusCode, cancel.body).toBe(202);
      expect(cancel.json().job).toMatchObject({ status: 'cancelled', error: 'cancelled by writer' });
      const again = await h.app.inject({
        method: 'POST',
        url: `/v1/jobs/${id}/cancel`,
        headers: bearer(TOKENS.writer),
      });
      expect(again.statusCode).toBe(409);
    } finally {
      await holder`rollback`;
      holder.release();
    }
  });

  it('vacuums chosen tables and REINDEXes concurrently', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/maintenance/vacuum',
      headers: bearer(TOKENS.writer),
      payload: { tables: ['Bloated', 'message_events'] },
    });
    expect(res.statusCode).toBe(202);
    const job = await h.waitJob(res.json().job.id);
    expect(job.status, job.error ?? '').toBe('succeeded');
    const done = (job.result as { done: { target: string }[] }).done.map((d) => d.target);
    expect(done).toContain('public.Bloated');
    expect(done.filter((t) => t.startsWith('public.message_events_p')).length).toBeGreaterThanOrEqual(4);
    const [row] = await h.db
      .sql`select last_vacuum is not null as vacuumed from pg_stat_user_tables where relname = 'Bloated'`;
    expect(row!.vacuumed).toBe(true);

    const plan = await h.app.inject({
      method: 'POST',
      url: '/v1/maintenance/reindex',
      headers: bearer(TOKENS.writer),
      payload: { tables: ['MixedCase'], dryRun: true },
    });
    expect(plan.json().steps).toEqual([
      {
        target: 'public.MixedCase',
        statement: 'reindex table concurrently "public"."MixedCase"',
        reason: 'requested',
      },
    ]);
    const reindex = await h.app.inject({
      method: 'POST',
      url: '/v1/maintenance/reindex',
      headers: bearer(TOKENS.writer),
      payload: { tables: ['MixedCase'] },
    });
    const rj = await h.waitJob(reindex.json().job.id);
    expect(rj.status, rj.error ?? '').toBe('succeeded');
    const jobs = await h.app.inject({
      method: 'GET',
      url: '/v1/jobs?kind=maintenance:reindex',
      headers: bearer(TOKENS.reader),
    });
    expect(jobs.json().jobs[0]).toMatchObject({
      id: rj.id,
      status: 'succeeded',
      trigger: 'http',
      requestedBy: 'writer',
    });
  });
});

describe('health fixes', () => {
  it('sizes plain tables (not only partitioned ones), and never proposes the search GIN indexes as unused', async () => {
    const r = await health();
    const sizes = r.sizes as { tables: { table: string; partitioned: boolean; totalBytes: number }[] };
    const guilds = sizes.tables.find((t) => t.table === 'guilds');
    expect(guilds).toMatchObject({ partitioned: false });
    expect(guilds!.totalBytes).toBeGreaterThan(0);
    expect(sizes.tables.find((t) => t.table === 'Bloated')!.totalBytes).toBeGreaterThan(1_000_000);
    // no search has run in this database: the GIN indexes have no scans, yet a documented path uses them
    expect(find(r, 'unused_index', /message_events_(tsv|mentions)_idx|search_terms_trgm_idx/)).toEqual([]);
  });

  it('plans a VACUUM and makes the report while another session holds an exclusive lock', async () => {
    const holder = await other.reserve();
    await holder`begin`;
    await holder`lock table "MixedCase" in access exclusive mode`;
    try {
      // both would wait for the lock until the rollback below if they took one
      const plan = await h.ops.planMaintenance('vacuum');
      expect(plan.skipped.some((s) => s.target === 'public.MixedCase')).toBe(true);
      const r = await health();
      expect((r.sizes as { approximate: boolean }).approximate).toBe(true);
      expect((r.sizes as { tables: { table: string }[] }).tables.some((t) => t.table === 'MixedCase')).toBe(
        true,
      );
    } finally {
      await holder`rollback`;
      holder.release();
    }
  });

  it('a VACUUMed table drops its bloat finding and is not planned again', async () => {
    const sql = h.db.sql;
    await sql`create table "Shrunk" (id int, payload text) with (autovacuum_enabled = false)`;
    await sql`insert into "Shrunk" select i, repeat('y', 120) from generate_series(1, 60000) i`;
    await sql`delete from "Shrunk" where id % 10 <> 0`;
    await sql`analyze "Shrunk"`;
    await sql`select pg_stat_force_next_flush()`;
    expect(find(await health(), 'table_bloat', 'public.Shrunk')).toHaveLength(1);
    await sql`vacuum (analyze) "Shrunk"`;
    await sql`select pg_stat_force_next_flush()`;
    const after = await until(async () => {
      const r = await health();
      return find(r, 'dead_tuples', 'public.Shrunk').length === 0 ? r : undefined;
    }, 'the vacuum to show in the statistics');
    expect(find(after, 'table_bloat', 'public.Shrunk')).toEqual([]);
    const plan = await h.ops.planMaintenance('vacuum');
    expect(plan.steps.map((s) => s.target)).not.toContain('public.Shrunk');
  });
});
