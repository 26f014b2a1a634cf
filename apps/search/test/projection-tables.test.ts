import { prepareTables } from '@spywatcher/projections';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECTIONS } from '../src/projections/definitions.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

describe('search read-model tables', () => {
  it('made by the migrations are adopted by the declarations as they are, rows kept, no rebuild', async () => {
    await db.sql`
      insert into rm_user_daily (guild_id, day, user_id, typing) values ('10000000000000001', '2026-11-02', 'kept', 3)
    `;
    for (const p of PROJECTIONS) expect(await prepareTables(db.sql, p), p.name).toBe('adopted');
    for (const p of PROJECTIONS) expect(await prepareTables(db.sql, p), p.name).toBe('current');
    const [row] = await db.sql<{ typing: number }[]>`select typing from rm_user_daily where user_id = 'kept'`;
    expect(row?.typing).toBe(3);
    expect(await db.sql`select 1 from projection_rebuilds`).toHaveLength(0);
  });
});
