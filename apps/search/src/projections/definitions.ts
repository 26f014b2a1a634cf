import { type Fragment, join } from '@spywatcher/db';
import type { EventType } from '@spywatcher/events';
import { CLIENTS } from '@spywatcher/events';
import {
  count,
  identifier,
  type Projection,
  type Source,
  type SqlPart,
  sqlPart,
  type ValueSpec,
} from '@spywatcher/projections';

// Counts are int: sum(int) adds into a bigint where sum(bigint) returns numeric (migration 0090).
const SUM: ValueSpec = { merge: 'sum', empty: sqlPart`0`, type: sqlPart`int`, default: sqlPart`0` };
const HOURS: ValueSpec = {
  merge: 'hours',
  empty: sqlPart`null::int[]`,
  type: sqlPart`int[]`,
  default: sqlPart`array_fill(0, array[24])`,
};
/** Discord ids compare by bytes (migration 0080): sorting and index builds cost half. */
const ID = sqlPart`text collate "C"`;
const DATE = sqlPart`date`;
const USER_DAY = { guild_id: ID, day: DATE, user_id: ID };
/** A guild's window read through the day (guild with it: the rows are written per guild and day). */
const BY_DAY = { day_idx: ['day', 'guild_id'] };
/** The read-only role Grafana's dashboards log in as (migration 0160). */
const READERS = ['spywatcher_grafana'];
/**
 * The weekdays with at least one event, as bits (bit d - 1 for ISO weekday d): one bit on a daily
 * row, up to seven on a weekly one. A query counts the days of a window from week rows by masking
 * the days outside it, where a count of rows would need every daily row.
 */
const WEEKDAYS: ValueSpec = { merge: 'bit_or', empty: sqlPart`0`, type: sqlPart`int`, default: sqlPart`0` };
const WEEKDAY_BIT = sqlPart`bit_or(1 << (extract(isodow from s.occurred_at at time zone 'UTC')::int - 1))`;
export const FAST_REACTION_MS = 3000;
const FAST = count(sqlPart`s.delta_ms < ${FAST_REACTION_MS}`);
const DAY = sqlPart`(s.occurred_at at time zone 'UTC')::date`;
const CLIENT_COUNT = sqlPart`(select count(distinct c) from unnest(s.clients) c)`;
/**
 * Whether a presence shows two or more distinct clients. Most presences list fewer than two, and
 * the cardinality test spares them the subquery (which was a fifth of the activity rebuild).
 */
const MULTI_CLIENT = sqlPart`(cardinality(s.clients) >= 2 and ${CLIENT_COUNT} >= 2)`;
/** Distinct clients of a presence event, sorted: the client combination as one value. */
const CLIENT_SET = sqlPart`array_to_string(array(select distinct c from unnest(s.clients) c order by c), ',')`;
/**
 * Counts per UTC hour of day as a 24-element array (index 1 = 00:00–00:59), over rows already
 * counted per (scope, key, guild, day, hour) by heatmapSource: 24 filters per group instead of
 * per event.
 */
const HOUR_COUNTS: SqlPart = (sql) =>
  sql`array[${join(
    sql,
    Array.from({ length: 24 }, (_, h) => sql`coalesce(sum(s.n) filter (where s.h = ${h}), 0)`),
  )}]::int[]`;

/** The column naming the user an event is about (a reaction's is the one reacting). */
const userOf = (type: EventType) => (type === 'reaction_time' ? 'actor_id' : 'user_id');
const userDayKeys = (type: EventType) => ({
  guild_id: sqlPart`coalesce(s.guild_id, '')`,
  user_id: identifier(`s.${userOf(type)}`),
  day: DAY,
});

/** Role changes per guild, user and day: a source of both activity tables. */
const roleChanges: Source = {
  keys: userDayKeys('role_change'),
  values: {
    role_changes: count(),
    roles_added: sqlPart`sum(cardinality(s.added_roles))`,
    roles_removed: sqlPart`sum(cardinality(s.removed_roles))`,
  },
};

const activity: Projection = {
  name: 'activity',
  version: 2,
  readers: READERS,
  description:
    'Per user, guild and UTC day: messages, typing, reactions (fast ones too), presences, multi-client presences, role changes (also on their own), deletions. Serves ghosts, lurkers, role-drift, behavior-shifts and suspicion.',
  types: ['message', 'typing', 'reaction_time', 'presence', 'role_change', 'deleted_message'],
  tables: [
    {
      name: 'rm_user_daily',
      weekly: 'rm_user_weekly',
      clusterBy: ['guild_id', 'day'],
      keys: ['guild_id', 'day', 'user_id'],
      keyTypes: USER_DAY,
      indexes: BY_DAY,
      values: {
        messages: SUM,
        typing: SUM,
        reactions: SUM,
        fast_reactions: SUM,
        presences: SUM,
        multi_client: SUM,
        role_changes: SUM,
        roles_added: SUM,
        roles_removed: SUM,
        deleted_messages: SUM,
        presence_weekdays: WEEKDAYS,
      },
      sources: {
        message: { keys: userDayKeys('message'), values: { messages: count() } },
        typing: { keys: userDayKeys('typing'), values: { typing: count() } },
        reaction_time: {
          keys: userDayKeys('reaction_time'),
          values: { reactions: count(), fast_reactions: FAST },
        },
        presence: {
          keys: userDayKeys('presence'),
          values: {
            presences: count(),
            multi_client: count(MULTI_CLIENT),
            presence_weekdays: WEEKDAY_BIT,
          },
        },
        role_change: roleChanges,
        deleted_message: { keys: userDayKeys('deleted_message'), values: { deleted_messages: count() } },
      },
    },
    {
      // Role changes are sparse (a few per user and month): role-drift reads these narrow rows
      // instead of picking them out of the wide per-day activity rows.
      name: 'rm_role_daily',
      weekly: 'rm_role_weekly',
      clusterBy: ['guild_id', 'day'],
      keys: ['guild_id', 'day', 'user_id'],
      keyTypes: USER_DAY,
      indexes: BY_DAY,
      values: { role_changes: SUM, roles_added: SUM, roles_removed: SUM, change_weekdays: WEEKDAYS },
      sources: {
        role_change: { ...roleChanges, values: { ...roleChanges.values, change_weekdays: WEEKDAY_BIT } },
      },
    },
  ],
};

const heatmapKeys = {
  scope: sqlPart`s.scope`,
  key: sqlPart`s.key`,
  guild_id: sqlPart`s.guild_id`,
  day: sqlPart`s.day`,
};
/**
 * Events counted per (scope, key, guild, day, hour) for the channel, user and guild scopes in one
 * pass: grouping sets fill three hash tables from each event row (the rebuild's costliest step;
 * a lateral row per scope grouped once took half as long again).
 */
const heatmapSource = (type: EventType) => (src: Fragment) => {
  const user = identifier(`e.${userOf(type)}`);
  return sqlPart`(select case when grouping(e.channel_id) = 0 then 'channel' when grouping(${user}) = 0 then 'user' else 'guild' end as scope,
      case when grouping(e.channel_id) = 0 then e.channel_id when grouping(${user}) = 0 then ${user} else e.guild_id end as key,
      e.guild_id, (e.occurred_at at time zone 'UTC')::date as day,
      extract(hour from e.occurred_at at time zone 'UTC')::int as h, count(*)::int as n
    from ${src} e
    group by grouping sets ((e.guild_id, 4, 5, e.channel_id), (e.guild_id, 4, 5, ${user}), (e.guild_id, 4, 5)))`;
};

const heatmap: Projection = {
  name: 'heatmap',
  version: 1,
  readers: READERS,
  description:
    'Messages, typing and reactions per UTC day and hour (24-slot arrays) for every guild, channel and user. Serves heatmap.',
  types: ['message', 'typing', 'reaction_time'],
  tables: [
    {
      name: 'rm_heatmap_daily',
      keys: ['scope', 'key', 'guild_id', 'day'],
      keyTypes: { scope: ID, key: ID, guild_id: ID, day: DATE },
      checks: { scope_check: sqlPart`scope in ('guild', 'channel', 'user')` },
      // Its grouping sets fill three hash tables per chunk whose groups are most of the
      // table's rows; spilled, each batch is grouped again. At 5,000,000 events: 15.2 backend
      // CPU-s with 4 MB, 11.6-12.0 with 64 MB, 11.1-11.6 with 128 MB, 11.0-11.4 with 1 GB (no
      // other table gained from more). The largest backend stayed at ~450 MB throughout: that
      // is the index build's maintenance_work_mem, not this.
      bulkWorkMem: '128MB',
      values: { messages: HOURS, typing: HOURS, reactions: HOURS },
      sources: {
        message: { keys: heatmapKeys, values: { messages: HOUR_COUNTS }, prepare: heatmapSource('message') },
        typing: { keys: heatmapKeys, values: { typing: HOUR_COUNTS }, prepare: heatmapSource('typing') },
        reaction_time: {
          keys: heatmapKeys,
          values: { reactions: HOUR_COUNTS },
          prepare: heatmapSource('reaction_time'),
        },
      },
    },
  ],
};

const channelKeys = (type: EventType) => ({
  guild_id: sqlPart`s.guild_id`,
  day: DAY,
  user_id: identifier(`s.${userOf(type)}`),
  channel_id: sqlPart`s.channel_id`,
});

const channels: Projection = {
  name: 'channels',
  version: 1,
  readers: READERS,
  description: 'Messages, typing and reactions per user, channel and UTC day. Serves channel-diversity.',
  types: ['message', 'typing', 'reaction_time'],
  tables: [
    {
      name: 'rm_user_channel_daily',
      weekly: 'rm_user_channel_weekly',
      clusterBy: ['guild_id', 'day'],
      keys: ['guild_id', 'day', 'user_id', 'channel_id'],
      keyTypes: { ...USER_DAY, channel_id: ID },
      indexes: BY_DAY,
      values: { events: SUM },
      sources: {
        message: { keys: channelKeys('message'), values: { events: count() } },
        typing: { keys: channelKeys('typing'), values: { events: count() } },
        reaction_time: { keys: channelKeys('reaction_time'), values: { events: count() } },
      },
    },
  ],
};

const clients: Projection = {
  name: 'clients',
  version: 2,
  readers: READERS,
  description:
    'Presences showing each client (desktop, web, mobile: a column each) and per combination of clients seen at once, per user and UTC day. Serves multi-client and client-drift.',
  types: ['presence'],
  tables: [
    {
      // A column per client (the event table allows no others): a user's mix is one row.
      name: 'rm_client_daily',
      weekly: 'rm_client_weekly',
      clusterBy: ['guild_id', 'day'],
      keys: ['guild_id', 'day', 'user_id'],
      keyTypes: USER_DAY,
      indexes: BY_DAY,
      values: Object.fromEntries(CLIENTS.map((c) => [c, SUM])),
      sources: {
        presence: {
          keys: userDayKeys('presence'),
          values: Object.fromEntries(CLIENTS.map((c) => [c, count(sqlPart`${c} = any(s.clients)`)])),
        },
      },
    },
    {
      name: 'rm_multi_client_daily',
      weekly: 'rm_multi_client_weekly',
      clusterBy: ['guild_id', 'day'],
      keys: ['guild_id', 'day', 'user_id', 'clients'],
      keyTypes: { ...USER_DAY, clients: ID },
      indexes: BY_DAY,
      values: {
        events: SUM,
        first_at: { merge: 'least', empty: sqlPart`null::timestamptz`, type: sqlPart`timestamptz` },
        last_at: { merge: 'greatest', empty: sqlPart`null::timestamptz`, type: sqlPart`timestamptz` },
      },
      sources: {
        presence: {
          keys: { ...userDayKeys('presence'), clients: CLIENT_SET },
          values: {
            events: count(),
            first_at: sqlPart`min(s.occurred_at)`,
            last_at: sqlPart`max(s.occurred_at)`,
          },
          where: MULTI_CLIENT,
        },
      },
    },
  ],
};

const reactions: Projection = {
  name: 'reactions',
  version: 1,
  readers: READERS,
  description:
    'Per reacting user and UTC day: reactions, fast ones and the sum of deltas, and the deltas as value → count (exact medians). Serves reaction-stats.',
  types: ['reaction_time'],
  tables: [
    {
      name: 'rm_reaction_daily',
      weekly: 'rm_reaction_weekly',
      clusterBy: ['guild_id', 'day'],
      keys: ['guild_id', 'day', 'user_id'],
      keyTypes: USER_DAY,
      indexes: BY_DAY,
      // A sum of milliseconds may pass 2^31: bigint.
      values: { reactions: SUM, fast_reactions: SUM, delta_ms_sum: { ...SUM, type: sqlPart`bigint` } },
      sources: {
        reaction_time: {
          keys: { guild_id: sqlPart`s.guild_id`, day: DAY, user_id: sqlPart`s.actor_id` },
          values: { reactions: count(), fast_reactions: FAST, delta_ms_sum: sqlPart`sum(s.delta_ms)` },
        },
      },
    },
    {
      // Read per user (the users on a reaction-stats page), so rows are written in user order.
      name: 'rm_reaction_deltas',
      clusterBy: ['user_id', 'guild_id'],
      keys: ['user_id', 'guild_id', 'day', 'delta_ms'],
      keyTypes: { ...USER_DAY, delta_ms: sqlPart`integer` },
      values: { reactions: SUM },
      sources: {
        reaction_time: {
          keys: {
            guild_id: sqlPart`s.guild_id`,
            day: DAY,
            user_id: sqlPart`s.actor_id`,
            delta_ms: sqlPart`s.delta_ms`,
          },
          values: { reactions: count() },
        },
      },
    },
  ],
};

export const PROJECTIONS: readonly Projection[] = [activity, heatmap, channels, clients, reactions];

export function findProjection(name: string): Projection | undefined {
  return PROJECTIONS.find((p) => p.name === name);
}
