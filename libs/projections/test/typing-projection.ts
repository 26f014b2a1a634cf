import { appendRows, type CopyValue, ensurePartitions, type Sql } from '@spywatcher/db';
import { count, type Projection, sqlPart, startProjectionRunner, type TableSpec } from '../src/index.ts';

// xmin is cluster-wide: another database's long writing transaction holds the tail back until it
// ends. Waiting is correct; the bound is generous.
export const WAIT_MS = 170_000;
export const DAY = new Date('2026-11-02T10:00:00Z');
const ID = sqlPart`text collate "C"`;
export const COLUMNS = ['id', 'occurred_at', 'user_id', 'username', 'channel_id', 'channel_name', 'guild_id'];

/** A test's own read model: typing events per guild, UTC day and user, with a weekly roll-up. */
export function typingTable(name: string, changes: Partial<TableSpec> = {}): TableSpec {
  return {
    name: `${name}_daily`,
    weekly: `${name}_weekly`,
    keys: ['guild_id', 'day', 'user_id'],
    keyTypes: { guild_id: ID, day: sqlPart`date`, user_id: ID },
    values: { typing: { merge: 'sum', empty: sqlPart`0`, type: sqlPart`int`, default: sqlPart`0` } },
    indexes: { day_idx: ['day', 'guild_id'] },
    sources: {
      typing: {
        keys: {
          guild_id: sqlPart`s.guild_id`,
          day: sqlPart`(s.occurred_at at time zone 'UTC')::date`,
          user_id: sqlPart`s.user_id`,
        },
        values: { typing: count() },
      },
    },
    ...changes,
  };
}

export const typingProjection = (name: string, version: number, table: TableSpec): Projection => ({
  name,
  version,
  description: `typing per user and day (${name})`,
  types: ['typing'],
  tables: [table],
});

let seq = 0;

/** One typing_events row of `user` at `at`; `tx` overrides the writing transaction's id. */
export function typingRow(user: string, at = DAY): CopyValue[] {
  seq++;
  const id = `${seq.toString(16).padStart(8, '0')}-2222-7000-8000-000000000000`;
  return [id, at, user, user, '20000000000000001', 'general', '10000000000000001'];
}

/** Stores a typing event per user (one transaction). */
export async function insertTyping(sql: Sql, users: string[], at = DAY, tx?: string): Promise<void> {
  await ensurePartitions(sql, 'typing', [at]);
  await sql.begin(async (t) => {
    await appendRows(t, {
      table: 'typing_events',
      columns: tx ? [...COLUMNS, 'tx'] : COLUMNS,
      rows: users.map((user) => (tx ? [...typingRow(user, at), tx] : typingRow(user, at))),
    });
  });
}

/** Runs a runner of `projection` until it has applied every stored event. */
export async function catchUp(sql: Sql, projection: Projection): Promise<void> {
  const runner = startProjectionRunner({ sql, projections: [projection], pollMs: 600_000 });
  try {
    await runner.runUntilCaughtUp(WAIT_MS);
  } finally {
    await runner.stop();
  }
}

/** The typing counts of `user` in a table of typingTable. */
export async function typingOf(sql: Sql, table: string, user: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select coalesce(sum(typing), 0)::int as n from ${sql(table)} where user_id = ${user}
  `;
  return row!.n;
}
