import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSql, migrate, migrationStatus, repeatableStatus, type Sql } from '@spywatcher/db';
import { adminDatabaseUrl, createEmptyDatabase, createTestDatabase } from '@spywatcher/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR } from '../src/migrations-dir.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function emptyDb(): Promise<{ sql: Sql; url: string }> {
  const db = await createEmptyDatabase(adminDatabaseUrl(), 'sw_rep');
  const sql = createSql({ url: db.url, applicationName: 'repeatable-test', max: 4 });
  cleanups.push(async () => {
    await sql.end();
    await db.drop();
  });
  return { sql, url: db.url };
}

/** A database migrated with today's migrations, repeatable ones included (the test template). */
async function migratedDb(): Promise<Sql> {
  const db = await createTestDatabase();
  cleanups.push(db.drop);
  return db.sql;
}

/** A copy of the migrations; `keep` picks the versioned files and says whether the repeatables come. */
async function copyMigrations(keep?: { upTo: number; repeatables: boolean }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sw-migrations-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await cp(MIGRATIONS_DIR, dir, { recursive: true });
  if (keep) {
    for (const f of await readdir(dir)) {
      const later = f === 'repeatable' ? !keep.repeatables : Number.parseInt(f, 10) > keep.upTo;
      if (later) await rm(join(dir, f), { recursive: true });
    }
  }
  return dir;
}

/** Every function the migrations define, with its whole definition. */
async function functionDefinitions(sql: Sql): Promise<Record<string, string>> {
  const rows = await sql<{ signature: string; definition: string }[]>`
    select p.oid::regprocedure::text as signature, pg_get_functiondef(p.oid) as definition
    from pg_proc p
    where p.pronamespace = 'public'::regnamespace
      and not exists (select 1 from pg_depend e where e.objid = p.oid and e.deptype = 'e')
    order by 1`;
  return Object.fromEntries(rows.map((r) => [r.signature, r.definition]));
}

async function history(sql: Sql): Promise<{ name: string; checksum: string }[]> {
  return sql<{ name: string; checksum: string }[]>`
    select name, checksum from schema_repeatable_migrations order by id`;
}

async function editRepeatable(dir: string, name: string, edit: (sql: string) => string): Promise<void> {
  const file = join(dir, 'repeatable', `R__${name}.sql`);
  const before = await readFile(file, 'utf8');
  const after = edit(before);
  expect(after).not.toBe(before);
  await writeFile(file, after);
}

describe('repeatable migrations', () => {
  it('are applied on a fresh database after the versioned ones, each function as the versioned migrations left it', async () => {
    const { sql: versionedOnly } = await emptyDb();
    await migrate({ sql: versionedOnly, dir: await copyMigrations({ upTo: 9999, repeatables: false }) });
    const { sql } = await emptyDb();
    const logs: string[] = [];
    const first = await migrate({ sql, dir: MIGRATIONS_DIR, log: (l) => logs.push(l) });
    const files = (await readdir(join(MIGRATIONS_DIR, 'repeatable'))).sort();
    expect(first.repeatables.map((r) => r.file)).toEqual(files.map((f) => `repeatable/${f}`));
    const lastVersioned = logs.findLastIndex((l) => /^applied \d{4}_/.test(l));
    const firstRepeatable = logs.findIndex((l) => l.startsWith('applying repeatable/'));
    expect(firstRepeatable).toBeGreaterThan(lastVersioned);
    expect((await history(sql)).map((h) => h.name)).toEqual(first.repeatables.map((r) => r.name));

    const definitions = await functionDefinitions(sql);
    expect(definitions).toEqual(await functionDefinitions(versionedOnly));
    // one file per function name, and no file for a function the database does not have
    const names = new Set(Object.keys(definitions).map((f) => f.replace(/\(.*$/, '')));
    expect(files.map((f) => f.slice(3, -4))).toEqual([...names].sort());

    const second = await migrate({ sql, dir: MIGRATIONS_DIR });
    expect(second.applied).toEqual([]);
    expect(second.repeatables).toEqual([]);
    expect(await history(sql)).toHaveLength(files.length);
    expect((await repeatableStatus({ sql, dir: MIGRATIONS_DIR })).map((r) => r.state)).toEqual(
      files.map(() => 'applied'),
    );
  });

  it('adopt a database at the old head without changing a function or a stored row', async () => {
    // the old head: every versioned migration before the repeatables' history table (0220)
    const { sql } = await emptyDb();
    await migrate({ sql, dir: await copyMigrations({ upTo: 219, repeatables: false }) });
    await sql`select sw_ensure_partition('message_events', '2026-01-05')`;
    await sql`
      insert into message_events (id, occurred_at, user_id, username, channel_id, channel_name, guild_id, content)
      values (gen_random_uuid(), '2026-01-05', '1', 'u', '2', 'c', '3', 'see https://docs.node.js.org and <@123> :)')`;
    const rowBefore = await sql`select xmin::text, ctid::text, tsv::text, mention_ids from message_events`;
    const before = await functionDefinitions(sql);

    const dryRun = await migrate({ sql, dir: MIGRATIONS_DIR, dryRun: true });
    expect(dryRun.planned.map((p) => p.version)).toEqual([220, 221]);
    expect(dryRun.plannedRepeatables.every((r) => r.state === 'pending')).toBe(true);
    expect(dryRun.plannedRepeatables).toHaveLength(
      (await readdir(join(MIGRATIONS_DIR, 'repeatable'))).length,
    );

    const result = await migrate({ sql, dir: MIGRATIONS_DIR });
    expect(result.applied.map((a) => a.version)).toEqual([220, 221]);
    expect(result.repeatables).toHaveLength(dryRun.plannedRepeatables.length);
    const after = await functionDefinitions(sql);
    // 0221 drops the one function nothing calls any more; every other one is as it was
    const { 'sw_message_search_text_links(text)': dropped, ...kept } = before;
    expect(dropped).toBeDefined();
    expect(after).toEqual(kept);
    expect(await sql`select xmin::text, ctid::text, tsv::text, mention_ids from message_events`).toEqual(
      rowBefore,
    );
    expect((await migrationStatus({ sql, dir: MIGRATIONS_DIR })).every((r) => r.state === 'applied')).toBe(
      true,
    );
  });

  it('re-applies a changed file once, recording each application', async () => {
    const sql = await migratedDb();
    const dir = await copyMigrations();
    await editRepeatable(dir, 'sw_hours_add', (s) =>
      s.replace('coalesce(x, 0) + coalesce(y, 0)', 'coalesce(x, 0) + coalesce(y, 0) + 1'),
    );
    expect((await repeatableStatus({ sql, dir })).find((r) => r.name === 'sw_hours_add')!.state).toBe(
      'changed',
    );
    const first = await migrate({ sql, dir });
    expect(first.applied).toEqual([]);
    expect(first.repeatables.map((r) => r.name)).toEqual(['sw_hours_add']);
    const [sum] = await sql<{ s: number[] }[]>`select sw_hours_add(array[1, 2], array[3, 4]) as s`;
    expect(sum!.s).toEqual([5, 7]);
    expect((await migrate({ sql, dir })).repeatables).toEqual([]);
    const rows = (await history(sql)).filter((h) => h.name === 'sw_hours_add');
    expect(rows).toHaveLength(2);
    expect(rows[0]!.checksum).not.toBe(rows[1]!.checksum);
  });

  it('refuses to change a function behind stored values, and accepts the change from a versioned migration', async () => {
    const sql = await migratedDb();
    const dir = await copyMigrations();
    const historyBefore = await history(sql);
    const definitionsBefore = await functionDefinitions(sql);
    // sw_join_identifiers is called by sw_message_search_text_full, called by sw_message_search_text,
    // called by sw_message_tsv, which computes the generated column message_events.tsv.
    const change = (s: string) => s.replace("'-', 'g')", "' ', 'g')");
    await editRepeatable(dir, 'sw_join_identifiers', change);
    const error = await migrate({ sql, dir }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /^repeatable migration repeatable\/R__sw_join_identifiers\.sql refused: it changes sw_join_identifiers\(text\), whose results are stored in column message_events\.tsv\..*versioned migration that also recomputes them.*history are as they were/,
    );
    expect(await history(sql)).toEqual(historyBefore);
    expect(await functionDefinitions(sql)).toEqual(definitionsBefore);

    // the way to change it: a versioned migration replaces it and recomputes the stored values
    const definition = (await readFile(join(dir, 'repeatable', 'R__sw_join_identifiers.sql'), 'utf8'))
      .split('\n')
      .filter((l) => !l.startsWith('--'))
      .join('\n');
    await writeFile(
      join(dir, '0903_identifier_parts_as_words.sql'),
      `${definition}\nupdate message_events set content = content where content ~ '[._]';\n`,
    );
    const result = await migrate({ sql, dir });
    expect(result.applied.map((a) => a.version)).toEqual([903]);
    expect(result.repeatables.map((r) => r.name)).toEqual(['sw_join_identifiers']);
    const [words] = await sql<{ t: string }[]>`select sw_join_identifiers('node.js') as t`;
    expect(words!.t).toBe('node js');
  });

  it('leaves a clear error and the history unchanged when one fails', async () => {
    const sql = await migratedDb();
    const dir = await copyMigrations();
    const historyBefore = await history(sql);
    await writeFile(
      join(dir, 'repeatable', 'R__zz_broken.sql'),
      '-- reads a table that does not exist\ncreate or replace function zz_broken() returns bigint\nlanguage sql stable\nas $$ select count(*) from no_such_table $$;\n',
    );
    const error = await migrate({ sql, dir }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /^repeatable migration repeatable\/R__zz_broken\.sql failed at line 4: relation "no_such_table" does not exist \(SQLSTATE 42P01\); its transaction was rolled back/,
    );
    expect(await history(sql)).toEqual(historyBefore);
    const [fn] = await sql`select to_regprocedure('zz_broken()')::text as f`;
    expect(fn!.f).toBeNull();
    expect((await repeatableStatus({ sql, dir })).find((r) => r.name === 'zz_broken')!.state).toBe('pending');
  });

  it("wait for a table lock no longer than the migration's lock_timeout", async () => {
    const { sql } = await emptyDb();
    const dir = await mkdtemp(join(tmpdir(), 'sw-migrations-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await cp(
      join(MIGRATIONS_DIR, '0220_repeatable_migrations.sql'),
      join(dir, '0220_repeatable_migrations.sql'),
    );
    await writeFile(join(dir, '0001_table.sql'), 'create table busy (id int primary key);\n');
    await migrate({ sql, dir });
    await mkdir(join(dir, 'repeatable'));
    await writeFile(
      join(dir, 'repeatable', 'R__busy_ids.sql'),
      'create or replace view busy_ids as select id from busy;\n',
    );
    const holder = await sql.reserve();
    try {
      await holder`begin`;
      await holder`lock table busy in access exclusive mode`;
      const failure = await migrate({ sql, dir, lockTimeoutMs: 100 }).catch((e: unknown) => e as Error);
      expect((failure as Error).message).toMatch(
        /repeatable migration repeatable\/R__busy_ids\.sql failed at line 1: canceling statement due to lock timeout \(SQLSTATE 55P03\).*MIGRATION_LOCK_TIMEOUT_MS/,
      );
      await holder`rollback`;
    } finally {
      holder.release();
    }
    expect((await migrate({ sql, dir, lockTimeoutMs: 100 })).repeatables.map((r) => r.name)).toEqual([
      'busy_ids',
    ]);
  });

  it('two migrators at once apply each repeatable once', async () => {
    const { url } = await emptyDb();
    const a = createSql({ url, applicationName: 'migrate-a', max: 2 });
    const b = createSql({ url, applicationName: 'migrate-b', max: 2 });
    cleanups.push(async () => {
      await a.end();
      await b.end();
    });
    const [ra, rb] = await Promise.all([
      migrate({ sql: a, dir: MIGRATIONS_DIR, lockPollMs: 50 }),
      migrate({ sql: b, dir: MIGRATIONS_DIR, lockPollMs: 50 }),
    ]);
    const files = (await readdir(join(MIGRATIONS_DIR, 'repeatable'))).length;
    expect(ra.repeatables.length + rb.repeatables.length).toBe(files);
    expect(Math.min(ra.repeatables.length, rb.repeatables.length)).toBe(0);
    const names = (await history(a)).map((h) => h.name);
    expect(new Set(names).size).toBe(files);
    expect(names).toHaveLength(files);
  });
});
