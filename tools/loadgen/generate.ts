import { CLIENTS, type EventByType, type EventType, type SpywatcherEvent } from '@spywatcher/events';
import { createRng, type Rng } from './random.ts';
import { messageText } from './text.ts';

/**
 * Deterministic synthetic Discord activity: the same seed and options always give the same
 * events (ids included), so benchmarks in different tools can share a workload.
 *
 *   import { generateEvents, eventStream } from '../../loadgen/generate.ts';
 *   const events = generateEvents(42, 10_000, { types: { message: 1 } });
 */
export interface GenerateOptions {
  /** Time of the first event (default 2026-01-05T00:00:00Z). */
  start?: Date;
  /** Average gap between consecutive events in ms (default 50: 72k events an hour). */
  intervalMs?: number;
  guilds?: number;
  /** Channels per guild. */
  channels?: number;
  users?: number;
  /** Relative weights of the types (default message-heavy, like a real server). */
  types?: Partial<Record<EventType, number>>;
  /** Extra metadata put on every event. */
  metadata?: Record<string, unknown>;
}

export const DEFAULT_MIX: Record<EventType, number> = {
  message: 55,
  typing: 15,
  presence: 14,
  reaction_time: 6,
  deleted_message: 4,
  join: 3,
  role_change: 3,
};

const DISCORD_EPOCH = 1420070400000n;
const NAMES = [
  'wumpus',
  'clyde',
  'nelly',
  'phibi',
  'kaiser',
  'mika',
  'juan',
  'lena',
  'yuki',
  'dmitri',
  'ana',
  'omar',
];
const CHANNELS = [
  'general',
  'memes',
  'gaming',
  'dev',
  'music',
  'off-topic',
  'help',
  'announcements',
  'random',
  'voice-chat',
];
const STATUSES = ['online', 'idle', 'dnd', 'offline'] as const;

function hex(rng: Rng, n: number) {
  return rng.hex(n);
}

/** A UUIDv7 whose time is `ms` and whose random bits come from the seeded generator. */
function seededUuidv7(rng: Rng, ms: number): string {
  const h = ms.toString(16).padStart(12, '0') + hex(rng, 10);
  const v = `7${h.slice(13, 16)}`;
  const variant = ((Number.parseInt(h.slice(16, 17), 16) & 0x3) | 0x8).toString(16) + h.slice(17, 20);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${v}-${variant}-${h.slice(20, 32)}`;
}

function snowflakeAt(rng: Rng, ms: number): string {
  return (((BigInt(ms) - DISCORD_EPOCH) << 22n) | BigInt(rng.int(0, 4_194_303))).toString();
}

interface World {
  users: { id: string; name: string; ageDays: number }[];
  guilds: { id: string; channels: { id: string; name: string }[]; roles: string[] }[];
}

function buildWorld(
  rng: Rng,
  o: Required<Pick<GenerateOptions, 'guilds' | 'channels' | 'users'>>,
  at: number,
): World {
  const users = Array.from({ length: o.users }, (_, i) => ({
    id: snowflakeAt(rng, at - rng.int(1, 3000) * 86_400_000),
    name: `${rng.pick(NAMES)}${i}`,
    ageDays: rng.int(0, 3000),
  }));
  const guilds = Array.from({ length: o.guilds }, () => ({
    id: snowflakeAt(rng, at - rng.int(100, 2000) * 86_400_000),
    channels: Array.from({ length: o.channels }, (_, j) => ({
      id: snowflakeAt(rng, at - rng.int(1, 1000) * 86_400_000),
      name: j < CHANNELS.length ? CHANNELS[j]! : `channel-${j}`,
    })),
    roles: Array.from({ length: 8 }, () => snowflakeAt(rng, at - rng.int(1, 1000) * 86_400_000)),
  }));
  return { users, guilds };
}

/** Events one at a time, forever (or up to `count`), without holding them all in memory. */
export function* eventStream(
  seed: number | string,
  count = Number.POSITIVE_INFINITY,
  options: GenerateOptions = {},
) {
  const rng = createRng(seed);
  const start = (options.start ?? new Date('2026-01-05T00:00:00Z')).getTime();
  const interval = options.intervalMs ?? 50;
  const world = buildWorld(
    rng,
    { guilds: options.guilds ?? 5, channels: options.channels ?? 8, users: options.users ?? 2000 },
    start,
  );
  const userIds = world.users.map((u) => u.id);
  const mix = { ...(options.types ? {} : DEFAULT_MIX), ...options.types } as Record<EventType, number>;
  let at = start;
  for (let i = 0; i < count; i++) {
    at += Math.round(interval * 2 * rng.next());
    const type = rng.weighted(mix);
    const user = rng.pick(world.users);
    const guild = rng.pick(world.guilds);
    const channel = rng.pick(guild.channels);
    const envelope = {
      id: seededUuidv7(rng, at),
      type,
      occurred_at: new Date(at).toISOString(),
      ...(options.metadata ? { metadata: options.metadata } : {}),
    };
    let data: EventByType[EventType]['data'];
    switch (type) {
      case 'message':
        data = {
          message_id: snowflakeAt(rng, at),
          user_id: user.id,
          username: user.name,
          channel_id: channel.id,
          channel_name: channel.name,
          guild_id: guild.id,
          content: messageText(rng, { userIds, snowflake: () => snowflakeAt(rng, at) }),
          attachment_count: rng.chance(0.1) ? rng.int(1, 4) : 0,
          embed_count: rng.chance(0.08) ? 1 : 0,
        };
        break;
      case 'typing':
        data = {
          user_id: user.id,
          username: user.name,
          channel_id: channel.id,
          channel_name: channel.name,
          guild_id: guild.id,
        };
        break;
      case 'presence':
        data = {
          user_id: user.id,
          username: user.name,
          guild_id: guild.id,
          clients: CLIENTS.filter(() => rng.chance(0.45)),
          status: rng.pick(STATUSES),
        };
        break;
      case 'join':
        data = { user_id: user.id, username: user.name, guild_id: guild.id, account_age_days: user.ageDays };
        break;
      case 'deleted_message':
        data = {
          message_id: snowflakeAt(rng, at - rng.int(1, 3600_000)),
          user_id: user.id,
          username: user.name,
          channel_id: channel.id,
          channel_name: channel.name,
          guild_id: guild.id,
        };
        break;
      case 'reaction_time': {
        const actor = rng.pick(world.users);
        data = {
          observer_id: user.id,
          observer_name: user.name,
          actor_id: actor.id,
          actor_name: actor.name,
          channel_id: channel.id,
          guild_id: guild.id,
          delta_ms: Math.round(200 + 30_000 * rng.next() ** 3),
        };
        break;
      }
      case 'role_change':
        data = {
          user_id: user.id,
          username: user.name,
          guild_id: guild.id,
          added_roles: rng.chance(0.6) ? [rng.pick(guild.roles)] : [],
          removed_roles: rng.chance(0.4) ? [rng.pick(guild.roles)] : [],
        };
        break;
    }
    yield { ...envelope, data } as SpywatcherEvent;
  }
}

/** `count` events from `seed` as an array. */
export function generateEvents(
  seed: number | string,
  count: number,
  options: GenerateOptions = {},
): SpywatcherEvent[] {
  return [...eventStream(seed, count, options)];
}
