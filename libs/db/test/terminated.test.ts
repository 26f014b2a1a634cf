import { copyRows, createSql, type Sql, withTransaction } from '@spywatcher/db';
import {
  adminDatabaseUrl,
  createTestDatabase,
  recordUncaught,
  type TestDatabase,
  type UncaughtRecorder,
} from '@spywatcher/testing';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

// postgres.js 3.4.9 wrote to a socket it had already dropped when PostgreSQL ended a connection
// in the middle of a transaction or a COPY: an uncaught TypeError in nextWrite that killed the
// process (upstream issues #1154 and #1208). patches/postgres+3.4.9.patch fixes it at the source;
// without the patch these tests record an uncaught exception (and vitest reports it).
let db: TestDatabase;
let admin: Sql;
let sql: Sql;
let watch: UncaughtRecorder;
let uncaught: unknown[];

beforeAll(async () => {
  db = await createTestDatabase();
  admin = createSql({ url: adminDatabaseUrl(), applicationName: 'spywatcher-tests', max: 1 });
  await db.sql`create table terminated_rows (n integer primary key)`;
  watch = recordUncaught();
  uncaught = watch.errors;
});
afterAll(async () => {
  watch?.stop();
  await admin?.end({ timeout: 5 });
  await db?.drop();
});
beforeEach(() => {
  uncaught.length = 0;
  sql = createSql({ url: db.url, applicationName: 'spywatcher-terminated-test', max: 2, connectTimeoutS: 2 });
});
afterEach(async () => {
  await sql.end({ timeout: 5 });
});

/** Ends one backend of this test's own database and waits until the server has let it go. */
async function terminate(pid: number) {
  await admin`select pg_terminate_backend(pid) from pg_stat_activity where pid = ${pid} and datname = ${db.name}`;
  for (;;) {
    const rows = await admin`select 1 from pg_stat_activity where pid = ${pid}`;
    if (rows.length === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  // let the client see the socket close before the next statement is sent
  await new Promise((r) => setTimeout(r, 100));
}

/** A few turns of the event loop, so a write scheduled with setImmediate has run. */
const settle = () => new Promise((r) => setTimeout(r, 200));

async function rowCount(): Promise<number> {
  const [r] = await db.sql<{ n: number }[]>`select count(*)::int as n from terminated_rows`;
  return r!.n;
}

describe('PostgreSQL ends the connection', () => {
  it('between two inserts of a transaction: the transaction rejects, nothing is written, the pool reconnects', async () => {
    const attempt = withTransaction(sql, async (tx) => {
      const [me] = await tx<{ pid: number }[]>`select pg_backend_pid() as pid`;
      await tx`insert into terminated_rows values (1)`;
      await terminate(me!.pid);
      await tx`insert into terminated_rows values (2)`;
      await tx`insert into terminated_rows values (3)`;
    });
    await expect(attempt).rejects.toThrow(/CONNECTION_CLOSED|terminating connection/);
    await settle();
    expect(uncaught).toEqual([]);
    expect(await rowCount()).toBe(0);
    const [again] = await sql<{ one: number }[]>`select 1 as one`;
    expect(again!.one).toBe(1);
  });

  it('in the middle of a COPY: the COPY rejects, nothing is written, the pool reconnects', async () => {
    const attempt = withTransaction(sql, async (tx) => {
      const [me] = await tx<{ pid: number }[]>`select pg_backend_pid() as pid`;
      async function* rows() {
        for (let n = 100; n < 5100; n++) {
          if (n === 2100) await terminate(me!.pid);
          yield [n];
        }
      }
      await copyRows(tx, 'terminated_rows', ['n'], rows(), 500);
      await tx`insert into terminated_rows values (99)`;
    });
    await expect(attempt).rejects.toThrow();
    await settle();
    expect(uncaught).toEqual([]);
    expect(await rowCount()).toBe(0);
    await copyRows(sql, 'terminated_rows', ['n'], [[7]]);
    expect(await rowCount()).toBe(1);
    await db.sql`truncate terminated_rows`;
  });

  it('while connections are being opened (startup, array types): queries settle, none crashes the process', async () => {
    let terminating = true;
    // bounded, so the queries of the last rounds can complete once it stops
    const stop = setTimeout(() => {
      terminating = false;
    }, 4000);
    const killer = (async () => {
      while (terminating) {
        await admin`select pg_terminate_backend(pid) from pg_stat_activity
                     where datname = ${db.name} and application_name = 'spywatcher-terminated-test'`;
      }
    })();
    for (let round = 0; round < 15; round++) {
      const fresh = createSql({
        url: db.url,
        applicationName: 'spywatcher-terminated-test',
        max: 2,
        connectTimeoutS: 2,
      });
      await Promise.all(
        Array.from({ length: 4 }, () =>
          fresh`select ${[1, 2]}::int[] as a`.then(
            () => 'ok',
            () => 'rejected',
          ),
        ),
      );
      await fresh.end({ timeout: 1 });
    }
    await killer;
    clearTimeout(stop);
    await settle();
    expect(uncaught).toEqual([]);
  });

  it('while pooled statements are in flight: each rejects or succeeds, none crashes the process', async () => {
    const [victim] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
    const statements = Array.from({ length: 40 }, (_, i) =>
      sql`insert into terminated_rows select ${1000 + i} from pg_sleep(0.05)`.then(
        () => 'ok',
        () => 'rejected',
      ),
    );
    await terminate(victim!.pid);
    const outcomes = await Promise.all(statements);
    await settle();
    expect(uncaught).toEqual([]);
    expect(await rowCount()).toBe(outcomes.filter((o) => o === 'ok').length);
    const [again] = await sql<{ one: number }[]>`select 1 as one`;
    expect(again!.one).toBe(1);
  });
});
