import { isRetryableTransactionError, withTransaction } from '@spywatcher/db';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`create table skew (who text not null)`;
  await db.sql`create table accounts (id integer primary key, balance integer not null)`;
  await db.sql`insert into accounts values (1, 100), (2, 100)`;
});
afterAll(async () => {
  await db?.drop();
});

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('withTransaction', () => {
  it('re-runs a transaction that PostgreSQL aborted with a serialization failure (40001)', async () => {
    // Write skew: both transactions read the whole table, then each inserts a row. The other one
    // commits first, so PostgreSQL's serializable snapshot isolation must abort the first attempt.
    const firstRead = deferred();
    const otherCommitted = deferred();
    const errors: string[] = [];
    let attempts = 0;

    const retried = withTransaction(
      db.sql,
      async (tx) => {
        attempts++;
        await tx`select count(*) from skew`;
        if (attempts === 1) {
          firstRead.resolve();
          await otherCommitted.promise;
        }
        try {
          await tx`insert into skew values ('retried')`;
        } catch (error) {
          errors.push((error as { code?: string }).code ?? 'none');
          throw error;
        }
      },
      { isolation: 'serializable', baseDelayMs: 1 },
    );
    await firstRead.promise;
    await db.sql.begin(async (tx) => {
      await tx`set transaction isolation level serializable`;
      await tx`select count(*) from skew`;
      await tx`insert into skew values ('other')`;
    });
    otherCommitted.resolve();
    await retried;

    expect(attempts).toBe(2);
    expect(errors).toEqual(['40001']);
    const rows = await db.sql<{ who: string }[]>`select who from skew order by who`;
    expect(rows.map((r) => r.who)).toEqual(['other', 'retried']);
  });

  it('re-runs the victim of a deadlock (40P01) and both transfers complete', async () => {
    const locked = { a: deferred(), b: deferred() };
    const attempts = { a: 0, b: 0 };
    const errors: string[] = [];
    const transfer = (name: 'a' | 'b', first: number, second: number, other: 'a' | 'b') =>
      withTransaction(
        db.sql,
        async (tx) => {
          attempts[name]++;
          // Detect the deadlock quickly instead of after the default second.
          await tx`set local deadlock_timeout = '50ms'`;
          try {
            await tx`update accounts set balance = balance - 10 where id = ${first}`;
            locked[name].resolve();
            await locked[other].promise;
            await tx`update accounts set balance = balance + 10 where id = ${second}`;
          } catch (error) {
            errors.push((error as { code?: string }).code ?? 'none');
            throw error;
          }
        },
        // The default backoff (10 ms base) lets the winner take its second row before the victim retries.
        {},
      );

    await Promise.all([transfer('a', 1, 2, 'b'), transfer('b', 2, 1, 'a')]);

    // One victim at least; a retry that grabs its first row before the winner does can deadlock
    // again, and is retried again: every failed attempt was a deadlock, and each was re-run.
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(new Set(errors)).toEqual(new Set(['40P01']));
    expect(attempts.a + attempts.b).toBe(2 + errors.length);
    const rows = await db.sql<
      { id: number; balance: number }[]
    >`select id, balance from accounts order by id`;
    expect(rows).toEqual([
      { id: 1, balance: 100 },
      { id: 2, balance: 100 },
    ]);
  });

  it('gives up after the configured attempts and rethrows the PostgreSQL error', async () => {
    let attempts = 0;
    const failing = withTransaction(
      db.sql,
      async (tx) => {
        attempts++;
        await tx`select 1`;
        throw Object.assign(new Error('could not serialize access'), { code: '40001' });
      },
      { attempts: 3, baseDelayMs: 1 },
    );
    await expect(failing).rejects.toMatchObject({ code: '40001' });
    expect(attempts).toBe(3);
  });

  it('does not re-run other errors', async () => {
    let attempts = 0;
    const failing = withTransaction(db.sql, async (tx) => {
      attempts++;
      await tx`insert into accounts values (1, 0)`;
    });
    await expect(failing).rejects.toMatchObject({ code: '23505' });
    expect(attempts).toBe(1);
    expect(isRetryableTransactionError({ code: '40P01' })).toBe(true);
    expect(isRetryableTransactionError(new Error('x'))).toBe(false);
  });
});
