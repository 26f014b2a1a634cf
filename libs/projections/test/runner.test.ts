import { connect, type NatsConnection } from '@nats-io/transport-node';
import { appendRows, ensurePartitions } from '@spywatcher/db';
import { subjects } from '@spywatcher/events';
import { createTestDatabase, type TestDatabase, testNatsNames, testNatsUrl } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RebuildConflictError, rebuildProjection, startProjectionRunner } from '../src/index.ts';
import {
  COLUMNS,
  catchUp,
  DAY,
  insertTyping,
  typingOf,
  typingProjection,
  typingRow,
  typingTable,
  WAIT_MS,
} from './typing-projection.ts';

const TABLE = 'rm_runner_typing_daily';
const projection = typingProjection('runner', 1, typingTable('rm_runner_typing'));

let db: TestDatabase;
let nats: NatsConnection;
const names = testNatsNames('projlib');

async function until(check: () => Promise<boolean>, what: string) {
  for (let i = 0; i < 3400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** The typing counts of the read model and of the log, which must be equal. */
async function modelAndLog() {
  const [row] = await db.sql<{ model: number; log: number }[]>`
    select (select coalesce(sum(typing), 0)::int from ${db.sql(TABLE)}) as model,
      (select count(*)::int from typing_events) as log
  `;
  return row!;
}

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl() });
  await ensurePartitions(db.sql, 'typing', [DAY]);
});

afterAll(async () => {
  await nats?.close();
  await db?.drop();
});

describe('projection runner', { timeout: 180_000 }, () => {
  it('never skips rows of a transaction that started first and commits last', async () => {
    const runner = startProjectionRunner({ sql: db.sql, projections: [projection], pollMs: 600_000 });
    await runner.runOnce();
    let releaseA!: () => void;
    const aMayCommit = new Promise<void>((r) => {
      releaseA = r;
    });
    let aInserted!: () => void;
    const aHasInserted = new Promise<void>((r) => {
      aInserted = r;
    });
    // Writer A starts first (smaller tx id) and stays open.
    const writerA = db.sql.begin(async (tx) => {
      await appendRows(tx, { table: 'typing_events', columns: COLUMNS, rows: [typingRow('slow-writer')] });
      aInserted();
      await aMayCommit;
    });
    await aHasInserted;
    // Writer B starts later (larger tx id, larger positions) and commits first.
    await db.sql.begin(async (tx) => {
      await appendRows(tx, { table: 'typing_events', columns: COLUMNS, rows: [typingRow('fast-writer')] });
    });
    await runner.runOnce();
    // B's rows are visible, but A is still in flight below them: nothing past A is read yet,
    // otherwise the checkpoint would move beyond A's rows and they would never be applied.
    expect(await typingOf(db.sql, TABLE, 'fast-writer')).toBe(0);
    releaseA();
    await writerA;
    await runner.runUntilCaughtUp(WAIT_MS);
    expect(await typingOf(db.sql, TABLE, 'slow-writer')).toBe(1);
    expect(await typingOf(db.sql, TABLE, 'fast-writer')).toBe(1);
    // Applying again changes nothing: the checkpoint moved with the read model.
    await runner.runUntilCaughtUp(WAIT_MS);
    expect(await typingOf(db.sql, TABLE, 'fast-writer')).toBe(1);
    await runner.stop();
  });

  it('wakes on a stored notification (no poll needed)', async () => {
    const runner = startProjectionRunner({
      sql: db.sql,
      projections: [projection],
      nats,
      names,
      pollMs: 600_000,
    });
    await runner.runUntilCaughtUp(WAIT_MS);
    await insertTyping(db.sql, ['notified', 'notified', 'notified']);
    nats.publish(
      subjects(names).stored('typing'),
      JSON.stringify({ type: 'typing', count: 3, ids: [], maxPosition: '0' }),
    );
    await until(
      async () => (await typingOf(db.sql, TABLE, 'notified')) === 3,
      'the runner to apply after the notification',
    );
    await runner.stop();
  });
});

describe('rebuild', { timeout: 180_000 }, () => {
  it('runs one rebuild of a projection at a time even without a job row, so no event counts twice', async () => {
    await insertTyping(db.sql, ['before-rebuilds', 'before-rebuilds', 'before-rebuilds']);
    let paused!: () => void;
    const isPaused = new Promise<void>((r) => {
      paused = r;
    });
    let resume!: () => void;
    const resumed = new Promise<void>((r) => {
      resume = r;
    });
    // The first rebuild has done its bulk pass (horizon taken before the rows below) and is slow.
    const first = rebuildProjection(db.sql, projection, {
      onProgress: async (p) => {
        if (p.phase !== 'indexing') return;
        paused();
        await resumed;
      },
    });
    await isPaused;
    await insertTyping(db.sql, [
      'between-rebuilds',
      'between-rebuilds',
      'between-rebuilds',
      'between-rebuilds',
    ]);
    // A second one (say a job taking over one whose heartbeat lapsed) must not touch the
    // `__next` tables and checkpoints the first is still using.
    await expect(rebuildProjection(db.sql, projection)).rejects.toBeInstanceOf(RebuildConflictError);
    resume();
    await first;
    await catchUp(db.sql, projection);
    const counts = await modelAndLog();
    expect(counts.model).toBe(counts.log);
    expect(await typingOf(db.sql, TABLE, 'between-rebuilds')).toBe(4);
    // Once the first has finished, the next rebuild runs.
    await rebuildProjection(db.sql, projection);
    expect(await typingOf(db.sql, TABLE, 'between-rebuilds')).toBe(4);
  });

  it('counts every event once when the log spans transaction ids of different lengths', async () => {
    // Rows written by transactions 999 and 1000 (explicit: a test cannot pick the server's xids).
    // Compared as text, '999' sorts after '1000': a checkpoint taken that way stops short of the
    // bulk pass's end and the tail counts the rows after it a second time.
    const users = ['xid-lengths', 'xid-lengths', 'xid-lengths'];
    await insertTyping(db.sql, users, undefined, '999');
    await insertTyping(db.sql, users, undefined, '1000');
    const report = await rebuildProjection(db.sql, projection);
    expect(report.tailEvents).toBe(0);
    expect(await typingOf(db.sql, TABLE, 'xid-lengths')).toBe(6);
    const counts = await modelAndLog();
    expect(counts.model).toBe(counts.log);
  });
});
