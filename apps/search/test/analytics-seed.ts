import {
  appendRows,
  type CopyValue,
  ensurePartitions,
  PartitionCache,
  type Sql,
  withTransaction,
} from '@spywatcher/db';
import { type EventType, eventTable } from '@spywatcher/events';
import { mulberry32 } from '@spywatcher/testing/random';

/**
 * Deterministic SpyWatcher events for the analytics tests and the projections benchmark. Users
 * follow archetypes so that every analytics question has answers: ghosts (typing, few messages),
 * lurkers (presence only), multi-client users, fast reactors, users whose activity jumps in the
 * last week, users who move from desktop to mobile, role churners and message deleters.
 */
export interface SeedOptions {
  seed?: number;
  events: number;
  /** First UTC day of the data. */
  start: string;
  days: number;
  guilds?: number;
  users?: number;
  channelsPerGuild?: number;
}

export const COLUMNS: Record<EventType, readonly string[]> = {
  presence: ['id', 'occurred_at', 'user_id', 'username', 'guild_id', 'clients', 'status'],
  typing: ['id', 'occurred_at', 'user_id', 'username', 'channel_id', 'channel_name', 'guild_id'],
  message: [
    'id',
    'occurred_at',
    'message_id',
    'user_id',
    'username',
    'channel_id',
    'channel_name',
    'guild_id',
    'content',
  ],
  deleted_message: [
    'id',
    'occurred_at',
    'message_id',
    'user_id',
    'username',
    'channel_id',
    'channel_name',
    'guild_id',
  ],
  reaction_time: [
    'id',
    'occurred_at',
    'observer_id',
    'observer_name',
    'actor_id',
    'actor_name',
    'channel_id',
    'guild_id',
    'delta_ms',
  ],
  role_change: ['id', 'occurred_at', 'user_id', 'username', 'guild_id', 'added_roles', 'removed_roles'],
  join: ['id', 'occurred_at', 'user_id', 'username', 'guild_id', 'account_age_days'],
};

export interface SeedEvent {
  type: EventType;
  occurredAt: Date;
  row: CopyValue[];
}

const WORDS = ['gg', 'hello', 'lol', 'anyone', 'raid', 'tonight', 'patch', 'notes', 'nice', 'ok'];
const ROLES = Array.from({ length: 10 }, (_, i) => `90000000000000${i}`);

/** Events in a deterministic order (not sorted by time, as real arrivals are not). */
export function* generateEvents(options: SeedOptions): Generator<SeedEvent> {
  const rand = mulberry32(options.seed ?? 42);
  const guilds = options.guilds ?? 3;
  const users = options.users ?? 40;
  const channelsPerGuild = options.channelsPerGuild ?? 6;
  const start = Date.parse(`${options.start}T00:00:00Z`);
  const span = options.days * 86_400_000;
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const guildId = (g: number) => `1000000000000000${g}`;
  const channelId = (g: number, c: number) => `2000000000000${g}0${c}`;
  const userId = (u: number) => `3000000000000${String(u).padStart(5, '0')}`;

  for (let i = 0; i < options.events; i++) {
    const u = Math.floor(rand() * users);
    const archetype = u % 10;
    const uid = userId(u);
    const name = `user${u}`;
    let g = u % guilds;
    if (rand() < 0.2) g = Math.floor(rand() * guilds);
    // Shifters are busy in the last week; everybody else spreads evenly.
    const recentBias = archetype === 4 && rand() < 0.7;
    const t = recentBias ? start + span - rand() * 7 * 86_400_000 : start + rand() * span;
    const occurredAt = new Date(Math.floor(t));
    const c =
      archetype === 7
        ? Math.floor(rand() * channelsPerGuild)
        : Math.floor(rand() * Math.min(2, channelsPerGuild));
    const channel = channelId(g, c);
    const channelName = `chan-${g}-${c}`;
    const id = `${i.toString(16).padStart(8, '0')}-0000-7000-8000-${(options.seed ?? 42).toString(16).padStart(12, '0')}`;

    let type: EventType;
    const r = rand();
    if (archetype === 1) type = 'presence';
    else if (archetype === 2) type = r < 0.75 ? 'typing' : r < 0.8 ? 'message' : 'presence';
    else if (archetype === 3) type = r < 0.5 ? 'reaction_time' : r < 0.7 ? 'presence' : 'message';
    else if (archetype === 8) type = r < 0.25 ? 'role_change' : r < 0.5 ? 'deleted_message' : 'message';
    else
      type =
        r < 0.3
          ? 'presence'
          : r < 0.55
            ? 'typing'
            : r < 0.75
              ? 'message'
              : r < 0.88
                ? 'reaction_time'
                : r < 0.92
                  ? 'role_change'
                  : r < 0.96
                    ? 'deleted_message'
                    : 'join';

    let row: CopyValue[];
    switch (type) {
      case 'presence': {
        let clients: string[];
        if (archetype === 5) clients = t < start + span - 7 * 86_400_000 ? ['desktop'] : ['mobile'];
        else if (archetype === 6 || (archetype === 3 && rand() < 0.5))
          clients = rand() < 0.5 ? ['desktop', 'mobile'] : ['web', 'desktop', 'mobile'];
        else
          clients =
            rand() < 0.1 ? [] : rand() < 0.1 ? ['desktop', 'web'] : [pick(['desktop', 'web', 'mobile'])];
        const guild = rand() < 0.05 ? null : guildId(g);
        row = [id, occurredAt, uid, name, guild, clients, clients.length === 0 ? 'offline' : 'online'];
        break;
      }
      case 'typing':
        row = [id, occurredAt, uid, name, channel, channelName, guildId(g)];
        break;
      case 'message':
        row = [
          id,
          occurredAt,
          `5${i}`,
          uid,
          name,
          channel,
          channelName,
          guildId(g),
          `${pick(WORDS)} ${pick(WORDS)}`,
        ];
        break;
      case 'deleted_message':
        row = [id, occurredAt, `5${i}`, uid, name, channel, channelName, guildId(g)];
        break;
      case 'reaction_time': {
        const observer = Math.floor(rand() * users);
        const delta = archetype === 3 ? 200 + Math.floor(rand() * 2500) : 500 + Math.floor(rand() * 60_000);
        row = [id, occurredAt, userId(observer), `user${observer}`, uid, name, channel, guildId(g), delta];
        break;
      }
      case 'role_change': {
        const added = ROLES.filter(() => rand() < 0.1);
        const removed = ROLES.filter(() => rand() < 0.08);
        row = [id, occurredAt, uid, name, guildId(g), added, removed];
        break;
      }
      default:
        row = [id, occurredAt, uid, name, guildId(g), Math.floor(rand() * 3000)];
    }
    yield { type, occurredAt, row };
  }
}

/** Stores events the way a writer does: partitions first (with the pool), then one transaction per chunk. */
export async function insertEvents(sql: Sql, events: Iterable<SeedEvent>, chunk = 5000): Promise<number> {
  const cache = new PartitionCache();
  let total = 0;
  let pending = new Map<EventType, SeedEvent[]>();
  const flush = async () => {
    for (const [type, list] of pending) {
      await ensurePartitions(
        sql,
        type,
        list.map((e) => e.occurredAt),
        cache,
      );
    }
    await withTransaction(sql, async (tx) => {
      for (const [type, list] of pending) {
        await appendRows(tx, {
          table: eventTable(type),
          columns: COLUMNS[type],
          rows: list.map((e) => e.row),
        });
      }
    });
    pending = new Map();
  };
  let n = 0;
  for (const e of events) {
    const list = pending.get(e.type) ?? [];
    list.push(e);
    pending.set(e.type, list);
    total++;
    if (++n >= chunk) {
      await flush();
      n = 0;
    }
  }
  if (n > 0) await flush();
  return total;
}
