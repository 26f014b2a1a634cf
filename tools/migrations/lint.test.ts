import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lintMigrations } from './lint.ts';

const dirs: string[] = [];
afterEach(async () => {
  while (dirs.length) await rm(dirs.pop()!, { recursive: true, force: true });
});

async function migrations(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sw-lint-migrations-'));
  dirs.push(dir);
  await mkdir(join(dir, 'repeatable'));
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  return dir;
}

describe('lintMigrations', () => {
  it('refuses a rewrite and a blocking index build on an existing table, in new files only', async () => {
    const dir = await migrations({
      '0001_old.sql': 'alter table events alter column n type bigint;\n',
      '0002_new.sql':
        'alter table events alter column n type bigint;\ncreate index events_n on events (n);\n',
    });
    const result = lintMigrations(dir, 1);
    expect(result.files).toEqual(['0002_new.sql']);
    expect(result.problems.join('\n')).toMatch(/0002_new\.sql.*changing-column-type/);
    expect(result.problems.join('\n')).toMatch(/0002_new\.sql.*require-concurrent-index-creation/);
    expect(result.problems.join('\n')).not.toMatch(/0001_old/);
  });

  it('accepts a table and its index created together, and CONCURRENTLY outside a transaction', async () => {
    const dir = await migrations({
      '0010_table.sql':
        'create table notes (id bigint primary key, body text);\ncreate index notes_body on notes (body);\n',
      '0011_index.sql':
        '-- migrate:no-transaction\ncreate index concurrently if not exists notes_id_body on notes (id, body);\n',
    });
    expect(lintMigrations(dir, 0)).toEqual({ files: ['0010_table.sql', '0011_index.sql'], problems: [] });
  });

  it('accepts an exemption with its reason on the line above, refuses one without', async () => {
    const dir = await migrations({
      '0020_explained.sql':
        '-- events_small holds a few hundred rows: the build takes milliseconds.\n' +
        '-- squawk-ignore require-concurrent-index-creation\n' +
        'create index events_small_n on events_small (n);\n',
      '0021_unexplained.sql':
        '-- squawk-ignore require-concurrent-index-creation\ncreate index events_big_n on events_big (n);\n',
    });
    const result = lintMigrations(dir, 0);
    expect(result.problems).toEqual([
      '0021_unexplained.sql:1: "-- squawk-ignore require-concurrent-index-creation" needs the reason on the comment line above it',
    ]);
  });

  it('lints every repeatable file, whatever the baseline, and refuses a statement that cannot run twice', async () => {
    const dir = await migrations({
      '0001_old.sql': 'create table notes (id bigint primary key, body text);\n',
      'repeatable/R__notes_body.sql':
        '-- the body of a note\ncreate or replace function notes_body(n bigint) returns text\nlanguage sql stable\nas $$ select body from notes where id = n $$;\n',
      'repeatable/R__notes_more.sql':
        'create or replace function notes_count() returns bigint language sql stable as $$ select count(*) from notes $$;\n' +
        'alter table notes add column tag text;\ncreate index notes_tag on notes (tag);\n',
    });
    const result = lintMigrations(dir, 1);
    expect(result.files).toEqual(['repeatable/R__notes_body.sql', 'repeatable/R__notes_more.sql']);
    const problems = result.problems.join('\n');
    expect(problems).not.toMatch(/R__notes_body/);
    expect(problems).toMatch(
      /R__notes_more\.sql: a repeatable migration .* move "alter table notes add column tag text"/,
    );
    expect(problems).toMatch(/R__notes_more\.sql.*require-concurrent-index-creation/);
  });
});
