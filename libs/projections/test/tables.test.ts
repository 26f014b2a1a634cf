import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareTables, sqlPart } from '../src/index.ts';
import { catchUp, insertTyping, typingProjection as projection, typingTable } from './typing-projection.ts';

let db: TestDatabase;

const rowsOf = (table: string) =>
  db.sql<{ guild_id: string; day: string; user_id: string; typing: number }[]>`
    select guild_id, day::text, user_id, typing::int from ${db.sql(table)} order by guild_id, day, user_id
  `;

async function columnType(table: string, column: string) {
  const [row] = await db.sql<{ type: string }[]>`
    select data_type as type from information_schema.columns where table_name = ${table} and column_name = ${column}
  `;
  return row?.type;
}

/** The read-only role migration 0160 creates (roles belong to the server, so it exists here). */
const READER = 'spywatcher_grafana';

async function readable(table: string) {
  const [row] = await db.sql<
    { ok: boolean }[]
  >`select has_table_privilege(${READER}, ${table}, 'select') as ok`;
  return row!.ok;
}

async function jobs(name: string) {
  return db.sql<{ status: string }[]>`select status from projection_rebuilds where projection = ${name}`;
}

beforeAll(async () => {
  db = await createTestDatabase();
  await insertTyping(db.sql, ['u1', 'u1', 'u2']);
  await insertTyping(db.sql, ['u1', 'u3'], new Date('2026-11-10T23:30:00Z'));
});

afterAll(async () => {
  await db?.drop();
});

describe('a projection owns its tables', { timeout: 180_000 }, () => {
  const v1 = { ...projection('owned', 1, typingTable('rm_owned')), readers: [READER] };

  it('creates the tables it declares when they are missing, and tails the log into them', async () => {
    expect(await prepareTables(db.sql, v1)).toBe('created');
    await catchUp(db.sql, v1);
    expect(await rowsOf('rm_owned_daily')).toEqual([
      { guild_id: '10000000000000001', day: '2026-11-02', user_id: 'u1', typing: 2 },
      { guild_id: '10000000000000001', day: '2026-11-02', user_id: 'u2', typing: 1 },
      { guild_id: '10000000000000001', day: '2026-11-10', user_id: 'u1', typing: 1 },
      { guild_id: '10000000000000001', day: '2026-11-10', user_id: 'u3', typing: 1 },
    ]);
    expect(await rowsOf('rm_owned_weekly')).toHaveLength(4);
    expect(await readable('rm_owned_daily')).toBe(true);
    expect(await readable('rm_owned_weekly')).toBe(true);
    expect(await prepareTables(db.sql, v1)).toBe('current');
    expect(await jobs('owned')).toEqual([]);
  });

  it('rebuilds into fresh tables when the declared shape changes, with the same rows', async () => {
    const before = { daily: await rowsOf('rm_owned_daily'), weekly: await rowsOf('rm_owned_weekly') };
    const v1Bigint = projection(
      'owned',
      1,
      typingTable('rm_owned', {
        values: { typing: { merge: 'sum', empty: sqlPart`0`, type: sqlPart`bigint`, default: sqlPart`0` } },
        indexes: { day_idx: ['day', 'guild_id'], user_idx: ['user_id'] },
      }),
    );
    expect(await prepareTables(db.sql, v1Bigint)).toBe('rebuild');
    await catchUp(db.sql, v1Bigint);
    expect(await jobs('owned')).toEqual([{ status: 'succeeded' }]);
    expect(await columnType('rm_owned_daily', 'typing')).toBe('bigint');
    expect(await columnType('rm_owned_weekly', 'typing')).toBe('bigint');
    const indexes = await db.sql<{ name: string }[]>`
      select indexname as name from pg_indexes where tablename = 'rm_owned_daily' order by 1
    `;
    expect(indexes.map((i) => i.name)).toEqual([
      'rm_owned_daily_day_idx',
      'rm_owned_daily_pkey',
      'rm_owned_daily_user_idx',
    ]);
    expect({ daily: await rowsOf('rm_owned_daily'), weekly: await rowsOf('rm_owned_weekly') }).toEqual(
      before,
    );
    const leftovers = await db.sql`select relname from pg_class where strpos(relname, '__') > 0`;
    expect(leftovers).toHaveLength(0);
    // The swapped-in tables keep what was granted on the ones they replace.
    expect(await readable('rm_owned_daily')).toBe(true);
    expect(await prepareTables(db.sql, v1Bigint)).toBe('current');

    // The live tail goes on into the new tables.
    await insertTyping(db.sql, ['u2']);
    await catchUp(db.sql, v1Bigint);
    expect((await rowsOf('rm_owned_daily')).find((r) => r.user_id === 'u2')?.typing).toBe(2);
  });

  it('rebuilds when only the declared version changes', async () => {
    const shape = typingTable('rm_owned', {
      values: { typing: { merge: 'sum', empty: sqlPart`0`, type: sqlPart`bigint`, default: sqlPart`0` } },
      indexes: { day_idx: ['day', 'guild_id'], user_idx: ['user_id'] },
    });
    const before = await rowsOf('rm_owned_daily');
    // A drifted row (say, a bug fixed by the new version): the rebuild restores it from the log.
    await db.sql`update rm_owned_daily set typing = 99 where user_id = 'u3'`;
    const v2 = projection('owned', 2, shape);
    expect(await prepareTables(db.sql, v2)).toBe('rebuild');
    await catchUp(db.sql, v2);
    // An older declaration (an instance not yet deployed) leaves the newer tables alone.
    expect(await prepareTables(db.sql, projection('owned', 1, shape))).toBe('newer');
    expect(await jobs('owned')).toEqual([{ status: 'succeeded' }, { status: 'succeeded' }]);
    expect(await rowsOf('rm_owned_daily')).toEqual(before);
    const [recorded] = await db.sql<{ version: number }[]>`
      select version from projection_schemas where projection = 'owned'
    `;
    expect(recorded?.version).toBe(2);
  });
  it('adds a table the previous version did not have, filled from the log and granted to its readers', async () => {
    const shape = typingTable('rm_owned', {
      values: { typing: { merge: 'sum', empty: sqlPart`0`, type: sqlPart`bigint`, default: sqlPart`0` } },
      indexes: { day_idx: ['day', 'guild_id'], user_idx: ['user_id'] },
    });
    const v3 = {
      ...projection('owned', 3, shape),
      tables: [shape, typingTable('rm_owned_extra')],
      readers: [READER],
    };
    expect(await prepareTables(db.sql, v3)).toBe('rebuild');
    await catchUp(db.sql, v3);
    expect(await rowsOf('rm_owned_extra_daily')).toEqual(await rowsOf('rm_owned_daily'));
    expect(await readable('rm_owned_extra_daily')).toBe(true);
    expect(await readable('rm_owned_extra_weekly')).toBe(true);
  });
});

describe('tables a migration created', { timeout: 180_000 }, () => {
  /** The tables as a migration would write them: other column order, names and statements. */
  async function migrationTables(table: string, countType: string) {
    await db.sql.unsafe(`
      create table ${table}_daily (
        guild_id text collate "C" not null, user_id text collate "C" not null, day date not null,
        typing ${countType} not null default 0,
        primary key (guild_id, day, user_id)
      );
      create index ${table}_daily_by_day on ${table}_daily (day, guild_id);
      create table ${table}_weekly (like ${table}_daily including defaults including constraints);
      alter table ${table}_weekly add primary key (guild_id, day, user_id);
      create index ${table}_weekly_by_day on ${table}_weekly (day, guild_id);
      insert into ${table}_daily values ('10000000000000001', 'kept', '2026-11-02', 7);
      insert into ${table}_weekly values ('10000000000000001', 'kept', '2026-11-02', 7);
    `);
  }

  it('are adopted as they are when their shape is the declared one: rows and checkpoints kept', async () => {
    await migrationTables('rm_adopted', 'int');
    const p = projection('adopted', 1, typingTable('rm_adopted'));
    await db.sql`
      insert into projection_checkpoints (projection, event_type, tx, position)
      values ('adopted', 'typing', '1', 1)
    `;
    expect(await prepareTables(db.sql, p)).toBe('adopted');
    expect(await rowsOf('rm_adopted_daily')).toEqual([
      { guild_id: '10000000000000001', day: '2026-11-02', user_id: 'kept', typing: 7 },
    ]);
    const [checkpoint] = await db.sql<{ position: string }[]>`
      select position::text from projection_checkpoints where projection = 'adopted'
    `;
    expect(checkpoint?.position).toBe('1');
    expect(await prepareTables(db.sql, p)).toBe('current');
    expect(await jobs('adopted')).toEqual([]);
  });

  it('are rebuilt when their shape differs from the declaration', async () => {
    await migrationTables('rm_differs', 'bigint');
    const p = projection('differs', 1, typingTable('rm_differs'));
    expect(await prepareTables(db.sql, p)).toBe('rebuild');
    await catchUp(db.sql, p);
    expect(await columnType('rm_differs_daily', 'typing')).toBe('integer');
    // Rebuilt from the log: the row only the old table held is gone, the log's rows are there.
    const rows = await rowsOf('rm_differs_daily');
    expect(rows.map((r) => r.user_id)).toEqual(['u1', 'u2', 'u1', 'u3']);
    expect(rows.reduce((n, r) => n + r.typing, 0)).toBe(6);
  });
});
