import { cp, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSql, migrate, migrationStatus, type Sql } from '@spywatcher/db';
import { adminDatabaseUrl, createEmptyDatabase } from '@spywatcher/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR } from '../src/migrations-dir.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function emptyDb(): Promise<{ sql: Sql; url: string }> {
  const db = await createEmptyDatabase(adminDatabaseUrl(), 'sw_mig');
  const sql = createSql({ url: db.url, applicationName: 'migrate-test', max: 4 });
  cleanups.push(async () => {
    await sql.end();
    await db.drop();
  });
  return { sql, url: db.url };
}

async function copyMigrations(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sw-migrations-'));
  await cp(MIGRATIONS_DIR, dir, { recursive: true });
  return dir;
}

describe('migrate', () => {
  it('gives every Discord id column and read-model key byte order (COLLATE "C"), partitions included', async () => {
    const { sql } = await emptyDb();
    await migrate({ sql, dir: MIGRATIONS_DIR });
    await sql`select sw_ensure_partition('message_events', now())`;
    // An index serves a comparison only under its own collation: one default-collated id column
    // joined to a C one would lose its index, so the rule is all of them.
    const wrong = await sql<{ rel: string; col: string; coll: string }[]>`
      select c.relname as rel, a.attname as col, coalesce(co.collname, '') as coll
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid
      join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
      left join pg_collation co on co.oid = a.attcollation
      where c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped and a.atttypid = 'text'::regtype
        and (c.relname like '%events%' or c.relname like 'rm\_%' or c.relname in ('users', 'guilds', 'banned_users', 'search_deleted_messages'))
        and (a.attname like '%\_id' or a.attname in ('key', 'client', 'clients'))
        and coalesce(co.collname, '') <> 'C'
    `;
    expect(wrong).toEqual([]);
    const partitions = await sql`select 1 from pg_inherits where inhparent = 'message_events'::regclass`;
    expect(partitions.length).toBeGreaterThan(0);
  });

  it("keeps the read models' counts as int (and int arrays), sums of milliseconds as bigint", async () => {
    const { sql } = await emptyDb();
    await migrate({ sql, dir: MIGRATIONS_DIR });
    // sum(int) adds into a bigint, sum(bigint) into 128 bits and returns numeric: the analytics
    // queries sum these columns for every request (migration 0090).
    const columns = await sql<{ rel: string; col: string; type: string }[]>`
      select c.relname as rel, a.attname as col, format_type(a.atttypid, a.atttypmod) as type
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid
      join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
      where c.relkind = 'r' and c.relname like 'rm\_%' and a.attnum > 0 and not a.attisdropped
        and a.atttypid in ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'int4[]'::regtype, 'int8[]'::regtype)
      order by 1, 2
    `;
    expect(columns.length).toBeGreaterThan(30);
    const bigint = columns.filter((c) => c.type === 'bigint' || c.type === 'bigint[]');
    expect(bigint.map((c) => `${c.rel}.${c.col}`)).toEqual([
      'rm_reaction_daily.delta_ms_sum',
      'rm_reaction_weekly.delta_ms_sum',
    ]);
    const [hours] = await sql<
      { sum: number[] }[]
    >`select sw_hours_add(array[1, 2]::int[], array[3, 4]::int[]) as sum`;
    expect(hours!.sum).toEqual([4, 6]);
  });

  it("0131 turns the shipped retention off, keeps an operator's, and finds partitions already imported", async () => {
    const { sql } = await emptyDb();
    const dir = await copyMigrations();
    // The repeatable migrations wait too: they define today's functions, which need 0132.
    const later = (await readdir(dir)).filter(
      (f) => f === 'repeatable' || (/^\d+_/.test(f) && Number.parseInt(f, 10) >= 131),
    );
    const aside = await mkdtemp(join(tmpdir(), 'sw-migrations-later-'));
    for (const f of later) await rename(join(dir, f), join(aside, f));
    await migrate({ sql, dir });
    await sql`update event_partitioning set retention_days = 14 where table_name = 'presence_events'`;
    await sql`select sw_ensure_partition('message_events', '2020-03-05')`;
    await sql`select sw_ensure_partition('message_events', '2020-04-05')`;
    const row = (legacy: boolean, at: string) => sql`
      insert into message_events (id, occurred_at, user_id, username, channel_id, channel_name, guild_id, content, metadata)
      values (gen_random_uuid(), ${at}, '1', 'x', '2', 'c', '3', 'hi', ${sql.json(legacy ? { legacy_id: 1 } : {})})`;
    await row(true, '2020-03-05');
    await row(false, '2020-04-05');
    for (const f of later) await rename(join(aside, f), join(dir, f));
    await rm(aside, { recursive: true });
    await migrate({ sql, dir });
    const policies =
      await sql`select table_name, retention_days, drop_imported from event_partitioning order by 1`;
    expect(policies.filter((p) => p.retention_days !== null)).toEqual([
      { table_name: 'presence_events', retention_days: 14, drop_imported: false },
    ]);
    expect(policies.every((p) => p.drop_imported === false)).toBe(true);
    const imported = await sql`select partition_name, parent, source_key from imported_partitions`;
    expect([...imported]).toEqual([
      { partition_name: 'message_events_p20200301', parent: 'message_events', source_key: null },
    ]);
  });

  it('0091 turns a populated per-client read model into a column per client, sums kept', async () => {
    const { sql } = await emptyDb();
    const dir = await copyMigrations();
    const pivot = '0091_client_columns.sql';
    await cp(join(dir, pivot), join(dir, `${pivot}.later`));
    await rm(join(dir, pivot));
    await migrate({ sql, dir });
    // The old shape, as the projection wrote it: a row per client, the roll-up per ISO week.
    await sql`
      insert into rm_client_daily (guild_id, user_id, day, client, presences) values
        ('g', 'u1', '2026-10-05', 'desktop', 3), ('g', 'u1', '2026-10-05', 'mobile', 1),
        ('g', 'u1', '2026-10-07', 'web', 2), ('g', 'u2', '2026-10-12', 'mobile', 5),
        ('h', 'u1', '2026-10-05', 'desktop', 7)`;
    await sql`
      insert into rm_client_weekly (guild_id, user_id, day, client, presences)
      select guild_id, user_id, '2026-10-05'::date + 7 * ((day - '2026-10-05'::date) / 7), client, sum(presences)
      from rm_client_daily group by 1, 2, 3, 4`;
    await cp(join(dir, `${pivot}.later`), join(dir, pivot));
    await rm(join(dir, `${pivot}.later`));
    const result = await migrate({ sql, dir });
    expect(result.applied.map((m) => m.name)).toEqual(['client_columns']);
    const daily =
      await sql`select guild_id, user_id, day::text, desktop, web, mobile from rm_client_daily order by 1, 2, 3`;
    expect([...daily]).toEqual([
      { guild_id: 'g', user_id: 'u1', day: '2026-10-05', desktop: 3, web: 0, mobile: 1 },
      { guild_id: 'g', user_id: 'u1', day: '2026-10-07', desktop: 0, web: 2, mobile: 0 },
      { guild_id: 'g', user_id: 'u2', day: '2026-10-12', desktop: 0, web: 0, mobile: 5 },
      { guild_id: 'h', user_id: 'u1', day: '2026-10-05', desktop: 7, web: 0, mobile: 0 },
    ]);
    const weekly =
      await sql`select guild_id, user_id, day::text, desktop, web, mobile from rm_client_weekly order by 1, 2, 3`;
    expect([...weekly]).toEqual([
      { guild_id: 'g', user_id: 'u1', day: '2026-10-05', desktop: 3, web: 2, mobile: 1 },
      { guild_id: 'g', user_id: 'u2', day: '2026-10-12', desktop: 0, web: 0, mobile: 5 },
      { guild_id: 'h', user_id: 'u1', day: '2026-10-05', desktop: 7, web: 0, mobile: 0 },
    ]);
    // The keys the upserts and the analytics read by.
    const indexes = await sql`
      select indexdef from pg_indexes where tablename in ('rm_client_daily', 'rm_client_weekly') order by indexname`;
    expect(indexes.map((i) => i.indexdef.replace(/^.* USING /, ''))).toEqual([
      'btree (day, guild_id)',
      'btree (guild_id, day, user_id)',
      'btree (day, guild_id)',
      'btree (guild_id, day, user_id)',
    ]);
  });

  it('migrates an empty database and a re-run is a no-op', async () => {
    const { sql } = await emptyDb();
    const first = await migrate({ sql, dir: MIGRATIONS_DIR });
    expect(first.applied.length).toBeGreaterThanOrEqual(4);
    const tables = await sql`select relname from pg_class where relname = 'message_events' and relkind = 'p'`;
    expect(tables).toHaveLength(1);
    const second = await migrate({ sql, dir: MIGRATIONS_DIR });
    expect(second.applied).toEqual([]);
    const history =
      await sql`select version, name, checksum, applied_at, duration_ms, applied_by from schema_migrations`;
    expect(history).toHaveLength(first.applied.length);
    expect(history[0]!.checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it('dry-run lists the plan and changes nothing', async () => {
    const { sql } = await emptyDb();
    const plan = await migrate({ sql, dir: MIGRATIONS_DIR, dryRun: true });
    expect(plan.planned.map((p) => p.version)).toEqual(
      [...plan.planned.map((p) => p.version)].sort((a, b) => a - b),
    );
    expect(plan.planned.length).toBeGreaterThanOrEqual(4);
    const [t] = await sql`select to_regclass('schema_migrations') as t`;
    expect(t!.t).toBeNull();
  });

  it('refuses when an applied file was edited or removed', async () => {
    const { sql } = await emptyDb();
    const dir = await copyMigrations();
    await migrate({ sql, dir });
    await writeFile(join(dir, '0002_reference_tables.sql'), '-- edited\nselect 1;\n');
    await expect(migrate({ sql, dir })).rejects.toThrow(
      /0002_reference_tables\.sql was edited after it was applied/,
    );
    const status = await migrationStatus({ sql, dir });
    expect(status.find((s) => s.version === 2)!.state).toBe('changed');

    const dir2 = await copyMigrations();
    const { rm } = await import('node:fs/promises');
    await rm(join(dir2, '0004_event_tables.sql'));
    await expect(migrate({ sql, dir: dir2 })).rejects.toThrow(
      /0004_event_tables\.sql was applied but its file is gone/,
    );
  });

  it('rolls back a failing migration and names the file and the error', async () => {
    const { sql } = await emptyDb();
    const dir = await copyMigrations();
    await migrate({ sql, dir });
    await writeFile(
      join(dir, '0900_broken.sql'),
      'create table half_done (id int);\ninsert into half_done values (1);\nselect * from no_such_table;\n',
    );
    const error = await migrate({ sql, dir }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /0900_broken\.sql failed at line 3: relation "no_such_table" does not exist/,
    );
    expect((error as Error).message).toMatch(/rolled back/);
    const [t] = await sql`select to_regclass('half_done') as t`;
    expect(t!.t).toBeNull();
    const [v] = await sql`select max(version) as v from schema_migrations`;
    expect(v!.v).toBeLessThan(900);
  });

  it('runs a no-transaction migration with CREATE INDEX CONCURRENTLY', async () => {
    const { sql } = await emptyDb();
    const dir = await copyMigrations();
    await writeFile(
      join(dir, '0901_concurrent_index.sql'),
      `-- migrate:no-transaction
create table if not exists conc_demo (id int, note text default 'a;b');
create index concurrently if not exists conc_demo_id_idx on conc_demo (id);
do $$ begin perform 1; end $$;
`,
    );
    const result = await migrate({ sql, dir });
    expect(result.applied.at(-1)!.name).toBe('concurrent_index');
    const idx = await sql`select indexname from pg_indexes where indexname = 'conc_demo_id_idx'`;
    expect(idx).toHaveLength(1);
  });

  it('two concurrent runs apply each migration exactly once, even with concurrent index builds', async () => {
    const { url } = await emptyDb();
    const dir = await copyMigrations();
    await writeFile(
      join(dir, '0902_slow_concurrent.sql'),
      `-- migrate:no-transaction
create table if not exists slow_demo as select g as id from generate_series(1, 50000) g;
select pg_sleep(0.5);
create index concurrently if not exists slow_demo_idx on slow_demo (id);
`,
    );
    const a = createSql({ url, applicationName: 'migrate-a', max: 2 });
    const b = createSql({ url, applicationName: 'migrate-b', max: 2 });
    cleanups.push(async () => {
      await a.end();
      await b.end();
    });
    const logs: string[] = [];
    const [ra, rb] = await Promise.all([
      migrate({ sql: a, dir, log: (l) => logs.push(`a: ${l}`), lockPollMs: 50 }),
      migrate({ sql: b, dir, log: (l) => logs.push(`b: ${l}`), lockPollMs: 50 }),
    ]);
    const total = ra.applied.length + rb.applied.length;
    const files = (await migrationStatus({ sql: a, dir })).length;
    expect(total).toBe(files);
    expect(Math.min(ra.applied.length, rb.applied.length)).toBe(0);
    expect(logs.some((l) => l.includes('another migrate run holds the lock'))).toBe(true);
    const [c] = await a`select count(*)::int as n from schema_migrations`;
    expect(c!.n).toBe(files);
  });
});

describe('lock_timeout', () => {
  it('fails a migration that waits for a lock longer than lockTimeoutMs, rolled back and named', async () => {
    const { sql } = await emptyDb();
    const dir = await mkdtemp(join(tmpdir(), 'sw-migrations-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, '0001_table.sql'), 'create table busy (id int primary key);\n');
    await migrate({ sql, dir });
    await writeFile(join(dir, '0002_alter.sql'), 'alter table busy add column note text;\n');

    // Another session holds a lock that conflicts with ALTER TABLE until it is released.
    const holder = await sql.reserve();
    try {
      await holder`begin`;
      await holder`lock table busy in access share mode`;
      const failure = await migrate({ sql, dir, lockTimeoutMs: 100 }).catch((e: unknown) => e as Error);
      expect(failure).toBeInstanceOf(Error);
      expect((failure as Error).message).toMatch(
        /migration 0002_alter\.sql failed: canceling statement due to lock timeout \(SQLSTATE 55P03\); its transaction was rolled back.*MIGRATION_LOCK_TIMEOUT_MS/,
      );
      await holder`rollback`;
    } finally {
      holder.release();
    }
    const columns =
      await sql`select 1 from information_schema.columns where table_name = 'busy' and column_name = 'note'`;
    expect(columns).toHaveLength(0);
    // Once the lock is gone the same migration applies, and the session setting did not stay behind.
    const { applied } = await migrate({ sql, dir, lockTimeoutMs: 100 });
    expect(applied.map((a) => a.name)).toEqual(['alter']);
    const [setting] = await sql<{ lock_timeout: string }[]>`show lock_timeout`;
    expect(setting?.lock_timeout).toBe('0');
  });
});
