import { appendRows, copyRows, withTransaction } from '@spywatcher/db';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// postgres.js 3.4.9 forgot a COPY the server refused after the last row had been sent: the
// writable never finished and the caller hung forever. patches/postgres+3.4.9.patch fixes it;
// these tests fail (by timing out) without the patch.
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`create table copy_checked (n integer primary key, v integer not null check (v > 0))`;
});
afterAll(async () => {
  await db?.drop();
});

describe('a COPY the server refuses', () => {
  it("rejects with PostgreSQL's message, rolls back, and leaves the pool usable", async () => {
    const rows = [
      [1, 5],
      [2, -1],
      [3, 7],
    ];
    await expect(
      withTransaction(db.sql, (tx) => copyRows(tx, 'copy_checked', ['n', 'v'], rows)),
    ).rejects.toThrow(/violates check constraint "copy_checked_v_check"/);
    const [count] = await db.sql<{ n: number }[]>`select count(*)::int as n from copy_checked`;
    expect(count!.n).toBe(0);
    await copyRows(db.sql, 'copy_checked', ['n', 'v'], [[10, 1]]);
    const [after] = await db.sql<{ n: number }[]>`select count(*)::int as n from copy_checked`;
    expect(after!.n).toBe(1);
  });

  it('rejects a malformed value in appendRows instead of hanging', async () => {
    await expect(
      withTransaction(db.sql, (tx) =>
        appendRows(tx, { table: 'copy_checked', columns: ['n', 'v'], rows: [[20, 'not a number']] }),
      ),
    ).rejects.toThrow(/invalid input syntax for type integer/);
  });

  it('rejects when the failure comes mid-stream, after many rows', async () => {
    const rows = Array.from({ length: 20_000 }, (_, i) => [1000 + i, i === 15_000 ? 0 : 1]);
    await expect(
      withTransaction(db.sql, (tx) => copyRows(tx, 'copy_checked', ['n', 'v'], rows, 500)),
    ).rejects.toThrow(/copy_checked_v_check/);
  });
});
