import { randomUUID } from 'node:crypto';
import {
  appendRows,
  createSql,
  ensurePartitions,
  importedPartitions,
  isMissingPartitionError,
  listPartitions,
  markPartitionsImported,
  PartitionCache,
  partitionPolicies,
  partitionUpkeep,
  RetentionError,
  type Sql,
  setRetention,
  withTransaction,
} from '@spywatcher/db';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterEach, describe, expect, it } from 'vitest';

// Each test gets its own database (a cheap template clone): partition sets never leak between tests.
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
async function freshDb(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  cleanups.push(db.drop);
  return db;
}

const typingColumns = ['id', 'occurred_at', 'user_id', 'username', 'channel_id', 'channel_name', 'guild_id'];
const typingRow = (at: Date) => [randomUUID(), at, '1', 'nelly', '2', 'general', '3'];

async function partitionNames(sql: Sql, parent: string): Promise<string[]> {
  return (await listPartitions(sql)).filter((p) => p.parent === parent).map((p) => p.name);
}

describe('partition upkeep', () => {
  it('creates the current period and the next ones ahead, and a second run has nothing to do', async () => {
    const { sql } = await freshDb();
    const now = new Date('2030-01-15T12:00:00Z');
    const actions = await partitionUpkeep(sql, { now, ahead: 2, skipRetention: true });
    expect(actions.every((a) => a.action === 'create')).toBe(true);

    expect(await partitionNames(sql, 'message_events')).toEqual(
      expect.arrayContaining([
        'message_events_p20300101',
        'message_events_p20300201',
        'message_events_p20300301',
      ]),
    );
    // Weekly tables: weeks start on Monday (2030-01-14), in UTC.
    expect(await partitionNames(sql, 'typing_events')).toEqual(
      expect.arrayContaining([
        'typing_events_p20300114',
        'typing_events_p20300121',
        'typing_events_p20300128',
      ]),
    );
    const created = actions.filter((a) => a.table === 'message_events');
    expect(created.map((a) => [a.from, a.to])).toContainEqual([
      '2030-02-01T00:00:00.000Z',
      '2030-03-01T00:00:00.000Z',
    ]);

    expect(await partitionUpkeep(sql, { now, ahead: 2, skipRetention: true })).toEqual([]);
  });

  it('retention drops only partitions whose whole range is expired; dry-run changes nothing', async () => {
    const { sql } = await freshDb();
    const now = new Date('2030-06-15T00:00:00Z');
    await setRetention(sql, 'message_events', 90);
    await setRetention(sql, 'deleted_message_events', 30);
    // message_events keeps 90 days: cutoff 2030-03-17. March ends after it, February before it.
    await ensurePartitions(sql, 'message', [
      new Date('2016-03-05T00:00:00Z'),
      new Date('2030-02-10T00:00:00Z'),
      new Date('2030-03-20T00:00:00Z'),
    ]);
    // deleted_message_events keeps 30 days (weekly): cutoff 2030-05-16.
    await ensurePartitions(sql, 'deleted_message', [
      new Date('2030-05-06T00:00:00Z'), // week 2030-05-06 .. 05-13: expired
      new Date('2030-05-14T00:00:00Z'), // week 2030-05-13 .. 05-20: still holds kept rows
    ]);
    const before = await listPartitions(sql);

    const plan = await partitionUpkeep(sql, { now, ahead: 1, dryRun: true });
    const drops = plan.filter((a) => a.action === 'drop').map((a) => a.partition);
    expect(drops.sort()).toEqual(
      ['deleted_message_events_p20300506', 'message_events_p20160301', 'message_events_p20300201'].sort(),
    );
    expect(await listPartitions(sql)).toEqual(before);

    await partitionUpkeep(sql, { now, ahead: 1 });
    const messages = await partitionNames(sql, 'message_events');
    expect(messages).not.toContain('message_events_p20160301');
    expect(messages).not.toContain('message_events_p20300201');
    expect(messages).toContain('message_events_p20300301');
    const deleted = await partitionNames(sql, 'deleted_message_events');
    expect(deleted).not.toContain('deleted_message_events_p20300506');
    expect(deleted).toContain('deleted_message_events_p20300513');
    // Detached and dropped, not merely detached.
    const [orphan] = await sql`select to_regclass('message_events_p20160301') as t`;
    expect(orphan!.t).toBeNull();
  });

  it('keeps every partition by default: retention is off until an operator sets it', async () => {
    const { sql } = await freshDb();
    expect((await partitionPolicies(sql)).map((p) => [p.retentionDays, p.dropImported])).toEqual(
      Array(7).fill([null, false]),
    );
    await ensurePartitions(sql, 'message', [new Date('2016-03-05T00:00:00Z')]);
    await ensurePartitions(sql, 'deleted_message', [new Date('2016-03-05T00:00:00Z')]);
    const actions = await partitionUpkeep(sql, { now: new Date('2030-06-15T00:00:00Z'), ahead: 0 });
    expect(actions.filter((a) => a.action !== 'create')).toEqual([]);
    expect(await partitionNames(sql, 'message_events')).toContain('message_events_p20160301');
  });

  it('never drops a partition holding imported rows unless drop_imported is set', async () => {
    const { sql } = await freshDb();
    const now = new Date('2030-06-15T00:00:00Z');
    await ensurePartitions(sql, 'message', [
      new Date('2016-03-05T00:00:00Z'),
      new Date('2016-04-05T00:00:00Z'),
    ]);
    await sql.begin((tx) =>
      markPartitionsImported(tx, 'message_events', [new Date('2016-03-05T00:00:00Z')], 'k'),
    );
    await setRetention(sql, 'message_events', 30);
    const plan = await partitionUpkeep(sql, { now, ahead: 0 });
    expect(plan.find((a) => a.partition === 'message_events_p20160301')).toMatchObject({
      action: 'keep',
      reason: expect.stringMatching(/imported legacy rows.*drop_imported/),
    });
    expect(plan.find((a) => a.partition === 'message_events_p20160401')?.action).toBe('drop');
    expect(await partitionNames(sql, 'message_events')).toContain('message_events_p20160301');

    const policy = await setRetention(sql, 'message_events', 30, true);
    expect(policy).toMatchObject({ retentionDays: 30, dropImported: true });
    await partitionUpkeep(sql, { now, ahead: 0 });
    expect(await partitionNames(sql, 'message_events')).not.toContain('message_events_p20160301');
    expect(await importedPartitions(sql)).toEqual(new Set());
    // drop_imported stays as set when only the days change
    expect(await setRetention(sql, 'message_events', null)).toMatchObject({ dropImported: true });

    await expect(setRetention(sql, 'messages', 30)).rejects.toThrow(/messages is not an event table/);
    await expect(setRetention(sql, 'message_events', 0)).rejects.toThrow(RetentionError);
  });

  it('a retention override of null keeps everything', async () => {
    const { sql } = await freshDb();
    await ensurePartitions(sql, 'message', [new Date('2016-03-05T00:00:00Z')]);
    const actions = await partitionUpkeep(sql, {
      now: new Date('2030-06-15T00:00:00Z'),
      retention: { message_events: null },
      dryRun: true,
    });
    expect(actions.filter((a) => a.action === 'drop' && a.table === 'message_events')).toEqual([]);
  });
});

describe('partitions of different lengths (an imported month in a weekly table)', () => {
  it("finds a time's partition by range and cuts a new week short where a month holds its first days", async () => {
    const { sql } = await freshDb();
    await sql`create table presence_events_p20240101 partition of presence_events
      for values from ('2024-01-01') to ('2024-02-01')`;
    const cache = new PartitionCache();
    // a week inside the month: no new partition
    expect(await ensurePartitions(sql, 'presence', [new Date('2024-01-10T12:00:00Z')], cache)).toEqual([]);
    const [inside] =
      await sql`select name, created from sw_ensure_partition('presence_events', '2024-01-10T12:00:00Z')`;
    expect(inside).toEqual({ name: 'presence_events_p20240101', created: false });
    // the week of 2024-01-29 runs into February: its partition starts where the month ends
    expect(await ensurePartitions(sql, 'presence', [new Date('2024-02-02T00:00:00Z')], cache)).toEqual([
      'presence_events_p20240201',
    ]);
    const parts = (await listPartitions(sql)).filter((p) => p.parent === 'presence_events');
    expect(parts.map((p) => [p.name, p.from.toISOString(), p.to.toISOString()])).toEqual([
      ['presence_events_p20240101', '2024-01-01T00:00:00.000Z', '2024-02-01T00:00:00.000Z'],
      ['presence_events_p20240201', '2024-02-01T00:00:00.000Z', '2024-02-05T00:00:00.000Z'],
    ]);
    // upkeep does not plan weeks the month covers
    const plan = await partitionUpkeep(sql, {
      now: new Date('2024-01-10T00:00:00Z'),
      ahead: 2,
      dryRun: true,
    });
    expect(plan.filter((a) => a.table === 'presence_events').map((a) => a.partition)).toEqual([]);
  });
});

describe('partitions on demand', () => {
  it('stores an event from 2016 after ensurePartitions, and a row with no partition is a missing-partition error', async () => {
    const { sql } = await freshDb();
    const old = new Date('2016-07-04T09:30:00Z');

    const missing = await withTransaction(sql, (tx) =>
      appendRows(tx, { table: 'typing_events', columns: typingColumns, rows: [typingRow(old)] }),
    ).catch((error: unknown) => error);
    expect(isMissingPartitionError(missing)).toBe(true);

    const cache = new PartitionCache();
    expect(await ensurePartitions(sql, 'typing', [old, new Date('2016-07-05T00:00:00Z')], cache)).toEqual([
      'typing_events_p20160704',
    ]);
    const ids = await withTransaction(sql, (tx) =>
      appendRows(tx, {
        table: 'typing_events',
        columns: typingColumns,
        rows: [typingRow(old)],
        returning: 'id',
      }),
    );
    expect(ids).toHaveLength(1);
    // Known now: neither the cache nor the database creates it again.
    expect(await ensurePartitions(sql, 'typing', [old], cache)).toEqual([]);
    expect(await ensurePartitions(sql, 'typing', [old])).toEqual([]);
  });

  it('other check violations are not mistaken for a missing partition', async () => {
    const { sql } = await freshDb();
    const at = new Date('2024-01-10T00:00:00Z');
    await ensurePartitions(sql, 'typing', [at]);
    const row = typingRow(at);
    row[2] = ''; // user_id <> '' is a CHECK constraint: also SQLSTATE 23514
    const error = await sql
      .begin((tx) => appendRows(tx, { table: 'typing_events', columns: typingColumns, rows: [row] }))
      .catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('23514');
    expect(isMissingPartitionError(error)).toBe(false);
  });

  it('many writers creating the same missing partition at once create exactly one, without errors', async () => {
    const db = await freshDb();
    const writers = 8;
    const pools = Array.from({ length: writers }, () =>
      createSql({ url: db.url, applicationName: 'partition-race', max: 1 }),
    );
    cleanups.push(async () => {
      await Promise.all(pools.map((p) => p.end()));
    });
    // Connect every writer first so the calls below really overlap.
    await Promise.all(pools.map((p) => p`select 1`));

    const at = new Date('2017-11-21T08:00:00Z');
    const results = await Promise.all(pools.map((p) => ensurePartitions(p, 'reaction_time', [at])));

    expect(results.flat()).toEqual(['reaction_time_events_p20171101']);
    const names = await partitionNames(db.sql, 'reaction_time_events');
    expect(names.filter((n) => n === 'reaction_time_events_p20171101')).toHaveLength(1);
  });
});
