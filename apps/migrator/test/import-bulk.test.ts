import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePartitions, PartitionCache } from '@spywatcher/db';
import { EVENT_TYPES, eventTable } from '@spywatcher/events';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLegacyFixture } from '../../../tools/legacy-fixture/fixture.ts';
import { importTarget, indexOn, loadPeriod, periodSql, periodStart, triggerOn } from '../src/import/bulk.ts';
import { runImport } from '../src/import/importer.ts';

const TABLES = EVENT_TYPES.map((t) => eventTable(t));

let dir: string;
const dbs: TestDatabase[] = [];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sw-import-bulk-test-'));
});
afterAll(async () => {
  for (const db of dbs) await db.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function freshDb(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  dbs.push(db);
  return db;
}

async function eventCount(db: TestDatabase): Promise<number> {
  let n = 0;
  for (const t of TABLES) {
    const [r] = await db.sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${t}`);
    n += r!.n;
  }
  return n;
}

describe('period helpers', () => {
  it('computes period starts as date_trunc does and rewrites definitions for a standalone table', async () => {
    const db = await freshDb();
    for (const iso of [
      '2024-03-31T23:59:59.999Z',
      '2024-01-01T00:00:00Z',
      '2023-12-31T12:00:00Z',
      '2024-02-29T10:00:00Z',
    ]) {
      const ms = Date.parse(iso);
      const [r] = await db.sql<{ w: Date; m: Date }[]>`
        select date_trunc('week', ${new Date(ms)}::timestamptz, 'UTC') as w,
               date_trunc('month', ${new Date(ms)}::timestamptz, 'UTC') as m`;
      expect(periodStart('week', ms)).toBe(r!.w.getTime());
      expect(periodStart('month', ms)).toBe(r!.m.getTime());
    }
    // The same period starts computed by SQLite when it indexes a legacy file's dates.
    const { DatabaseSync } = await import('node:sqlite');
    const lite = new DatabaseSync(':memory:');
    const samples = [
      Date.UTC(2015, 0, 1),
      Date.UTC(2100, 0, 1) - 1,
      Date.UTC(2024, 2, 1) - 1,
      Date.UTC(2024, 2, 1),
    ];
    for (let i = 0; i < 5000; i++) {
      const ms =
        Date.UTC(2015, 0, 1) + Math.floor(Math.random() * (Date.UTC(2100, 0, 1) - Date.UTC(2015, 0, 1)));
      samples.push(
        ms,
        Math.floor(ms / 86_400_000) * 86_400_000,
        Math.floor(ms / 86_400_000) * 86_400_000 - 1,
      );
    }
    for (const period of ['week', 'month'] as const) {
      const stmt = lite.prepare(`select ${periodSql(period, ':x')} as p`);
      for (const x of samples)
        expect((stmt.get({ x: BigInt(x) }) as { p: number }).p).toBe(periodStart(period, x));
    }
    lite.close();
    expect(
      indexOn(
        'CREATE INDEX message_events_user_idx ON ONLY public.message_events USING btree (user_id)',
        '"p"',
      ),
    ).toBe('CREATE INDEX ON "p" USING btree (user_id)');
    expect(
      triggerOn(
        'CREATE TRIGGER x AFTER INSERT ON public.message_events REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION f()',
        'message_events',
        '"p"',
      ),
    ).toBe(
      'CREATE TRIGGER x AFTER INSERT ON "p" REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION f()',
    );
  });
});

describe('bulk load of empty periods (load, index, attach)', () => {
  it('attaches fully indexed partitions whose rows a projector tailing below xmin sees exactly once', async () => {
    const db = await freshDb();
    const fx = writeLegacyFixture({ path: join(dir, 'tail.sqlite'), rows: 4000, seed: 5 });
    // A live row written before the import: a projector has already read it.
    const now = new Date();
    await ensurePartitions(db.sql, 'message', [now], new PartitionCache());
    await db.sql`insert into message_events (id, occurred_at, user_id, username, channel_id, channel_name, guild_id, content)
      values (gen_random_uuid(), ${now}, '1', 'live', '2', 'general', '3', 'live message')`;
    const cursors = new Map<string, { tx: string; position: string }>();
    for (const t of TABLES) cursors.set(t, { tx: '0', position: '0' });
    const seen = new Map<string, Set<string>>(TABLES.map((t) => [t, new Set()]));
    let duplicates = 0;
    // The projector's read: only below the oldest running transaction, in (tx, position) order.
    const tail = async () => {
      for (const t of TABLES) {
        for (;;) {
          const c = cursors.get(t)!;
          const rows = await db.sql.unsafe<{ id: string; tx: string; position: string }[]>(
            `select e.id::text as id, e.tx::text as tx, e.position::text as position from ${t} e
             where (e.tx, e.position) > ($1::xid8, $2::bigint) and e.tx < pg_snapshot_xmin(pg_current_snapshot())
             order by e.tx, e.position limit 2000`,
            [c.tx, c.position],
          );
          for (const r of rows) {
            if (seen.get(t)!.has(r.id)) duplicates++;
            seen.get(t)!.add(r.id);
          }
          if (rows.length === 0) break;
          const last = rows[rows.length - 1]!;
          cursors.set(t, { tx: last.tx, position: last.position });
        }
      }
    };
    const seenTotal = () => [...seen.values()].reduce((n, s) => n + s.size, 0);
    // Other sessions' transactions on the shared server can hold xmin back for a moment.
    const tailUntil = async (n: number) => {
      for (let i = 0; i < 300 && seenTotal() < n; i++) {
        await tail();
        if (seenTotal() < n) await new Promise((r) => setTimeout(r, 100));
      }
    };
    await tailUntil(1);
    expect(seen.get('message_events')!.size).toBe(1);

    let importing = true;
    const tailer = (async () => {
      while (importing) {
        await tail();
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const report = await runImport(db.sql, { from: fx.path, batchRows: 300 });
    importing = false;
    await tailer;
    expect(report.verified).toBe(true);
    expect(report.exitCode).toBe(0);
    const events = await eventCount(db);
    await tailUntil(events);
    await tail();
    expect(seenTotal()).toBe(events);
    expect(duplicates).toBe(0);

    // Every period went through the bulk path: no partition left detached, every partition's
    // indexes attached to the parent's (ATTACH adopted them), no leftover bounds check or trigger.
    const [loose] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from pg_class where relkind = 'r' and relname ~ '_events_p[0-9]{8}$' and not relispartition`;
    expect(loose!.n).toBe(0);
    for (const t of TABLES) {
      const mismatched = await db.sql<{ part: string }[]>`
        select p.relid::text as part
        from pg_partition_tree(${t}::regclass) p
        where p.isleaf
          and (select count(*) from pg_index i where i.indrelid = p.relid)
           <> (select count(*) from pg_index i where i.indrelid = ${t}::regclass)
           or (p.isleaf and exists (select 1 from pg_index i where i.indrelid = p.relid
                 and not exists (select 1 from pg_inherits h where h.inhrelid = i.indexrelid)))`;
      expect(mismatched).toEqual([]);
    }
    const [leftovers] = await db.sql<{ c: number; t: number }[]>`
      select (select count(*)::int from pg_constraint where conname like '%_import_bounds') as c,
             (select count(*)::int from pg_trigger t join pg_class r on r.oid = t.tgrelid
               where not t.tgisinternal and r.relispartition) as t`;
    expect(leftovers).toEqual({ c: 0, t: 0 });
    // The did-you-mean vocabulary holds exactly the words the parent's statement trigger would
    // have collected from these rows (the load did that work once per period, set-wise).
    const [terms] = await db.sql<{ missing: number; extra: number; n: number }[]>`
      with expected as (
        select distinct w from message_events, unnest(tsvector_to_array(tsv)) w
        where char_length(w) between 3 and 32 and w ~ '^[[:alpha:]][[:alpha:][:digit:]]*$'
      )
      select (select count(*)::int from expected e where not exists (select 1 from search_terms s where s.term = e.w)) as missing,
             (select count(*)::int from search_terms s where not exists (select 1 from expected e where e.w = s.term)) as extra,
             (select count(*)::int from search_terms) as n`;
    expect(terms).toMatchObject({ missing: 0, extra: 0 });
    expect(terms!.n).toBeGreaterThan(10);
    const [checkpoints] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from import_checkpoints where source_table ~ 'Event@' and completed`;
    // a month per table and period of the file (three months of history)
    expect(checkpoints!.n).toBeGreaterThanOrEqual(14);

    const again = await runImport(db.sql, { from: fx.path });
    expect(again.imported).toBe(0);
    expect(again.verified).toBe(true);
    expect(await eventCount(db)).toBe(events);
  });

  it('holds no lock on the parent while loading, so live writers can still create partitions', async () => {
    const db = await freshDb();
    const start = Date.UTC(2021, 4, 1);
    const target = importTarget('message_events', start);
    await loadPeriod(
      db.sql,
      'message_events',
      target,
      async (tx, table) => {
        const [held] = await tx<{ n: number }[]>`
          select count(*)::int as n from pg_locks where relation = 'message_events'::regclass and pid = pg_backend_pid()`;
        expect(held!.n).toBe(0);
        // A writer needing another period meanwhile (CREATE TABLE ... PARTITION OF locks the parent exclusively).
        await db.sql.begin(async (other) => {
          await other`set local lock_timeout = '5s'`;
          await other`select * from sw_ensure_partition('message_events', ${new Date(Date.UTC(2021, 6, 3))})`;
        });
        await tx.unsafe(`insert into ${table} (id, occurred_at, user_id, username, channel_id, channel_name, guild_id, content)
          values (gen_random_uuid(), '2021-05-02T00:00:00Z', '1', 'u', '2', 'c', '3', 'hello <@123> https://example.com')`);
      },
      async () => {},
    );
    const [row] = await db.sql<{ n: number; flag: boolean; part: string }[]>`
      select count(*)::int as n, bool_and(has_link) as flag, min(tableoid::regclass::text) as part
      from message_events where occurred_at < '2021-06-01'`;
    expect(row).toEqual({ n: 1, flag: true, part: target.name });
    const [terms] = await db.sql<
      { n: number }[]
    >`select count(*)::int as n from search_terms where term = 'hello'`;
    expect(terms!.n).toBe(1);
  });

  it('does a statement trigger work once over the loaded table when it has a _bulk companion', async () => {
    const db = await freshDb();
    const start = Date.UTC(2021, 4, 1);
    const target = importTarget('deleted_message_events', start);
    await loadPeriod(
      db.sql,
      'deleted_message_events',
      target,
      async (tx, table) => {
        // the companion replaces the trigger: none fires during the load
        const [fired] = await tx<{ n: number }[]>`
          select count(*)::int as n from pg_trigger where tgrelid = ${table}::regclass and not tgisinternal`;
        expect(fired!.n).toBe(0);
        for (const ids of [
          ['m2', null, 'm1'],
          ['m1', 'm3'],
        ]) {
          await tx.unsafe(
            `insert into ${table} (id, occurred_at, message_id, user_id, username, channel_id, channel_name, guild_id)
             select gen_random_uuid(), '2021-05-04T00:00:00Z', m, '1', 'u', '2', 'c', '3' from unnest($1::text[]) m`,
            [ids],
          );
        }
      },
      async () => {},
    );
    const ids = await db.sql<
      { message_id: string }[]
    >`select message_id from search_deleted_messages order by 1`;
    expect(ids.map((r) => r.message_id)).toEqual(['m1', 'm2', 'm3']);
  });

  it('inserts into periods whose partition already exists and holds rows, and still verifies', async () => {
    const db = await freshDb();
    const fx = writeLegacyFixture({ path: join(dir, 'mixed.sqlite'), rows: 1500, seed: 9 });
    // A partition of the fixture's history exists already, with a row in it.
    const fixtureStart = await (async () => {
      const { DatabaseSync } = await import('node:sqlite');
      const s = new DatabaseSync(fx.path, { readOnly: true });
      const r = s
        .prepare(`select min("createdAt") as t from "MessageEvent" where typeof("createdAt") = 'integer'`)
        .get() as {
        t: number;
      };
      s.close();
      return new Date(r.t);
    })();
    await ensurePartitions(db.sql, 'message', [fixtureStart], new PartitionCache());
    await db.sql`insert into message_events (id, occurred_at, user_id, username, channel_id, channel_name, guild_id)
      values (gen_random_uuid(), ${fixtureStart}, '1', 'live', '2', 'general', '3')`;
    const lines: string[] = [];
    const report = await runImport(db.sql, { from: fx.path, log: (l) => lines.push(l) });
    expect(report.verified).toBe(true);
    expect(lines.some((l) => /inserting into the existing partition/.test(l))).toBe(true);
    const [m] = await db.sql<{ n: number }[]>`select count(*)::int as n from message_events`;
    expect(m!.n).toBe(fx.tables.MessageEvent! + 1);
  });
});
