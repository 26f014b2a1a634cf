import { copyRows, ensurePartitions } from '@spywatcher/db';
import { EVENT_TYPES, type EventType, eventTable } from '@spywatcher/events';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { mulberry32 } from '@spywatcher/testing/random';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { userTimeline } from '../src/search/index.ts';
import { uuidFrom } from './search-corpus.ts';

// The timeline merges seven tables; the expected order is computed here from the rows inserted.

const USER = '111111111111111111';
const OTHER = '222222222222222222';
const GUILDS = ['900000000000000001', '900000000000000002'];

interface Seeded {
  type: EventType;
  id: string;
  at: Date;
  guild: string | null;
  user: string;
}

let db: TestDatabase;
const seeded: Seeded[] = [];

function columnsFor(type: EventType, e: Seeded): Record<string, unknown> {
  const base = { id: e.id, occurred_at: e.at };
  const other = e.user === USER ? OTHER : USER;
  switch (type) {
    case 'presence':
      return {
        ...base,
        user_id: e.user,
        username: 'u',
        guild_id: e.guild,
        clients: ['desktop'],
        status: 'online',
      };
    case 'typing':
      return {
        ...base,
        user_id: e.user,
        username: 'u',
        channel_id: '1',
        channel_name: 'c',
        guild_id: e.guild,
      };
    case 'message':
      return {
        ...base,
        user_id: e.user,
        username: 'u',
        channel_id: '1',
        channel_name: 'c',
        guild_id: e.guild,
        content: 'hello',
      };
    case 'join':
      return { ...base, user_id: e.user, username: 'u', guild_id: e.guild, account_age_days: 3 };
    case 'deleted_message':
      return {
        ...base,
        message_id: '5',
        user_id: e.user,
        username: 'u',
        channel_id: '1',
        channel_name: 'c',
        guild_id: e.guild,
      };
    case 'reaction_time':
      // the user is the observer half of the time and the actor otherwise
      return {
        ...base,
        observer_id: e.id < '8' ? e.user : other,
        observer_name: 'o',
        actor_id: e.id < '8' ? other : e.user,
        actor_name: 'a',
        channel_id: '1',
        guild_id: e.guild,
        delta_ms: 120,
      };
    case 'role_change':
      return {
        ...base,
        user_id: e.user,
        username: 'u',
        guild_id: e.guild,
        added_roles: ['mod'],
        removed_roles: [],
      };
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
  const rand = mulberry32(5);
  const start = Date.UTC(2026, 2, 1);
  const times: Date[] = [];
  for (let k = 0; k < 420; k++) {
    const type = EVENT_TYPES[Math.floor(rand() * EVENT_TYPES.length)]!;
    // many events share a time (within and across types) so every tie-break is exercised
    const at =
      times.length > 0 && rand() < 0.3
        ? times[Math.floor(rand() * times.length)]!
        : new Date(start + Math.floor(rand() * 60 * 86_400_000));
    times.push(at);
    const guild = type === 'presence' && rand() < 0.2 ? null : GUILDS[Math.floor(rand() * 2)]!;
    seeded.push({ type, id: uuidFrom(rand), at, guild, user: rand() < 0.8 ? USER : OTHER });
  }
  for (const type of EVENT_TYPES) {
    const rows = seeded.filter((e) => e.type === type);
    if (rows.length === 0) continue;
    await ensurePartitions(
      db.sql,
      type,
      rows.map((r) => r.at),
    );
    const records = rows.map((e) => columnsFor(type, e));
    const columns = Object.keys(records[0]!);
    await copyRows(
      db.sql,
      eventTable(type),
      columns,
      records.map((r) => columns.map((c) => r[c] as never)),
    );
  }
});

afterAll(async () => {
  await db?.drop();
});

function expected(filter: (e: Seeded) => boolean): string[] {
  return seeded
    .filter((e) => e.user === USER || e.type === 'reaction_time')
    .filter(filter)
    .sort(
      (a, b) =>
        b.at.getTime() - a.at.getTime() ||
        (a.id < b.id ? 1 : a.id > b.id ? -1 : 0) ||
        (a.type < b.type ? 1 : a.type > b.type ? -1 : 0),
    )
    .map((e) => `${e.type}:${e.id}`);
}

async function all(options: Parameters<typeof userTimeline>[2], limit: number) {
  const out: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 200; page++) {
    const res = await userTimeline(db.sql, USER, { ...options, limit, cursor });
    expect(res.entries.length).toBeLessThanOrEqual(limit);
    out.push(...res.entries.map((e) => `${e.type}:${e.id}`));
    if (!res.nextCursor) break;
    cursor = res.nextCursor;
  }
  return out;
}

describe('user timeline', () => {
  it('merges every type newest first across pages', async () => {
    const want = expected(() => true);
    expect(want.length).toBeGreaterThan(300);
    expect(await all({}, 7)).toEqual(want);
    expect(await all({}, 200)).toEqual(want);
  });

  it('filters by type and guild', async () => {
    expect(await all({ types: ['message', 'presence'] }, 9)).toEqual(
      expected((e) => e.type === 'message' || e.type === 'presence'),
    );
    expect(await all({ guildId: GUILDS[1] }, 11)).toEqual(expected((e) => e.guild === GUILDS[1]));
    expect(await all({ types: ['reaction_time'], guildId: GUILDS[0] }, 5)).toEqual(
      expected((e) => e.type === 'reaction_time' && e.guild === GUILDS[0]),
    );
  });

  it('returns the event columns without log bookkeeping', async () => {
    const res = await userTimeline(db.sql, USER, { types: ['role_change'], limit: 1 });
    expect(res.entries[0]).toMatchObject({
      type: 'role_change',
      data: { added_roles: ['mod'], user_id: USER },
    });
    expect(Object.keys(res.entries[0]!.data)).not.toContain('tx');
    expect(Object.keys(res.entries[0]!.data)).not.toContain('position');
  });

  it('an unknown user has an empty timeline', async () => {
    expect(await userTimeline(db.sql, '333', {})).toEqual({ entries: [], nextCursor: null });
  });
});
