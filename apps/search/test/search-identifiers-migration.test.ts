import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSql, MIGRATIONS_DIR, migrate, type Sql } from '@spywatcher/db';
import { adminDatabaseUrl, createEmptyDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseQuery, searchMessages } from '../src/search/index.ts';
import { insertContents } from './search-corpus.ts';

// Migration 0145 changes how identifiers are tokenised and recomputes the stored tsv of the
// messages already there: this database is migrated up to 0144, given messages, then migrated on.

const IDENTIFIER_MIGRATION = 145;

let db: Awaited<ReturnType<typeof createEmptyDatabase>>;
let sql: Sql;
let before: string;

const MESSAGES = [
  'install node.js first',
  'call console.log(x) here',
  'see README.md please',
  'use snake_case names',
  'plain words only',
  'the cafe downstairs',
  'watch https://www.youtube.com/watch?v=1',
  'write to a@b.co now',
];

/** Contents in three monthly partitions, an hour apart within each. */
async function insertMessages(messages: string[], start: number): Promise<void> {
  for (const month of [0, 1, 2]) {
    const part = messages.filter((_, i) => i % 3 === month);
    await insertContents(sql, part, new Date(Date.UTC(2026, month, 1, start)));
  }
}

beforeAll(async () => {
  db = await createEmptyDatabase(adminDatabaseUrl(), 'sw_test_ident');
  sql = createSql({ url: db.url, applicationName: 'spywatcher-tests', max: 3 });
  before = await mkdtemp(join(tmpdir(), 'sw-migrations-'));
  for (const f of await readdir(MIGRATIONS_DIR)) {
    if (f.endsWith('.sql') && Number(f.slice(0, 4)) < IDENTIFIER_MIGRATION) {
      await copyFile(join(MIGRATIONS_DIR, f), join(before, f));
    }
  }
  await migrate({ sql, dir: before });
  // several partitions, and more than one batch of keys (2,000) in one of them
  await insertMessages(MESSAGES, 0);
  await insertContents(
    sql,
    Array.from({ length: 4500 }, (_, i) => (i % 2 ? `filler ${i}` : `module${i}.ts loaded`)),
    new Date(Date.UTC(2026, 3, 1)),
    60_000,
  );
});

afterAll(async () => {
  await sql?.end();
  await db?.drop();
  if (before) await rm(before, { recursive: true, force: true });
});

const count = async (q: string) => (await searchMessages(sql, parseQuery(q), { limit: 100 }, q)).total?.count;

describe('migration 0145 on a database with messages', () => {
  it('recomputes the stored text of existing messages, in batches, while a lock delays it', async () => {
    expect(await count('node')).toBe(0);
    const untouched = await sql<{ xmin: string }[]>`
      select xmin::text from message_events where content = 'plain words only'`;

    // another session holds a partition lock that conflicts with the updates for a while:
    // the migration's batch gives up after lock_timeout and tries again instead of failing
    const holder = await sql.reserve();
    const [{ part }] = await holder<{ part: string }[]>`
      select tableoid::regclass::text as part from message_events where content = 'install node.js first'`;
    await holder`begin`;
    await holder.unsafe(`lock table ${part} in share mode`);
    const migrating = migrate({ sql, dir: MIGRATIONS_DIR });
    await new Promise((r) => setTimeout(r, 4000));
    await holder`commit`;
    holder.release();
    await migrating;

    const [stale] = await sql<{ n: number }[]>`
      select count(*)::int as n from message_events where tsv is distinct from sw_message_tsv(content)`;
    expect(stale!.n).toBe(0);
    // a message whose lexemes did not change is not rewritten
    const after = await sql<{ xmin: string }[]>`
      select xmin::text from message_events where content = 'plain words only'`;
    expect(after).toEqual(untouched);
    // the parts are did-you-mean vocabulary, as the insert trigger would have made them
    const terms = await sql<{ term: string }[]>`
      select term from search_terms where term in ('node', 'console', 'readme', 'module8') order by term`;
    expect(terms.map((t) => t.term)).toEqual(['console', 'module8', 'node', 'readme']);
  });

  it('finds identifiers by their parts and whole, in old and new messages alike', async () => {
    await insertMessages(['new node.js release', 'new snake_case rule'], 40);
    expect(await count('node')).toBe(2);
    expect(await count('node.js')).toBe(2);
    expect(await count('"install node.js"')).toBe(1);
    expect(await count('console')).toBe(1);
    expect(await count('console.log')).toBe(1);
    expect(await count('readme')).toBe(1);
    expect(await count('README.md')).toBe(1);
    expect(await count('snake')).toBe(2);
    expect(await count('snake_case')).toBe(2);
    expect(await count('module4')).toBe(1);
    expect(await count('youtube')).toBe(1);
    expect(await count('youtube.com')).toBe(1);
    expect(await count('a@b.co')).toBe(1);
  });
});
