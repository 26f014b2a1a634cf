import type { EventType } from '@spywatcher/db';

/**
 * A projection: the event types it reads, the read-model tables it owns, and, per event type,
 * the SQL that folds a set of events into those tables. The SQL is set-based (one
 * INSERT … SELECT … GROUP BY … ON CONFLICT per table) so a batch of any size costs a few
 * statements, and every read model is a sum/min/max aggregate: applying batches in any order or
 * split gives the same result, which is what lets the runner keep one checkpoint per event type.
 */
export interface Projection {
  name: string;
  description: string;
  /** Read-model tables this projection owns (rebuilt and swapped together). */
  tables: readonly string[];
  types: readonly EventType[];
  /**
   * Statements folding the events of `type` in `src` (a parenthesised subquery, aliased `s` by the
   * caller's text) into the tables named by `t(table)`.
   */
  apply(type: EventType, src: string, t: (table: string) => string): string[];
}

type Merge = 'sum' | 'least' | 'greatest';

/** INSERT … SELECT … GROUP BY keys ON CONFLICT DO UPDATE merging each value column. */
function upsert(
  table: string,
  src: string,
  keys: Record<string, string>,
  values: Record<string, string>,
  options: { from?: string; merge?: Record<string, Merge> } = {},
): string {
  const keyNames = Object.keys(keys);
  const valueNames = Object.keys(values);
  const merge = (c: string) => {
    const m = options.merge?.[c] ?? 'sum';
    if (m === 'sum') return `${c} = ${table}.${c} + excluded.${c}`;
    return `${c} = ${m}(${table}.${c}, excluded.${c})`;
  };
  return `insert into ${table} as ${table} (${[...keyNames, ...valueNames].join(', ')})
select ${[...Object.values(keys), ...Object.values(values)].join(', ')}
from ${src} s ${options.from ?? ''}
group by ${keyNames.map((_, i) => i + 1).join(', ')}
on conflict (${keyNames.join(', ')}) do update set ${valueNames.map(merge).join(', ')}`;
}

const DAY = `(s.occurred_at at time zone 'UTC')::date`;
/** Distinct clients of a presence event, sorted: the client combination as one value. */
const CLIENT_SET = `array_to_string(array(select distinct c from unnest(s.clients) c order by c), ',')`;
/** The user an event is about: the reacting user (actor) for reaction times. */
const userOf = (type: EventType) => (type === 'reaction_time' ? 's.actor_id' : 's.user_id');

export const FAST_REACTION_MS = 3000;

const activity: Projection = {
  name: 'activity',
  description:
    'Per user, guild and UTC day: messages, typing, reactions (fast ones too), presences, multi-client presences, role changes, deletions. Serves ghosts, lurkers, role-drift, behavior-shifts and suspicion.',
  tables: ['rm_user_daily'],
  types: ['message', 'typing', 'reaction_time', 'presence', 'role_change', 'deleted_message'],
  apply(type, src, t) {
    const table = t('rm_user_daily');
    const keys = { guild_id: `coalesce(s.guild_id, '')`, user_id: userOf(type), day: DAY };
    const values: Record<EventType, Record<string, string>> = {
      message: { messages: 'count(*)' },
      typing: { typing: 'count(*)' },
      reaction_time: {
        reactions: 'count(*)',
        fast_reactions: `count(*) filter (where s.delta_ms < ${FAST_REACTION_MS})`,
      },
      presence: {
        presences: 'count(*)',
        multi_client: `count(*) filter (where (select count(distinct c) from unnest(s.clients) c) >= 2)`,
      },
      role_change: {
        role_changes: 'count(*)',
        roles_added: 'sum(cardinality(s.added_roles))',
        roles_removed: 'sum(cardinality(s.removed_roles))',
      },
      deleted_message: { deleted_messages: 'count(*)' },
      join: {},
    };
    return [upsert(table, src, keys, values[type])];
  },
};

const heatmap: Projection = {
  name: 'heatmap',
  description:
    'Messages, typing and reactions per UTC hour for every guild, channel and user. Serves heatmap.',
  tables: ['rm_heatmap_hourly'],
  types: ['message', 'typing', 'reaction_time'],
  apply(type, src, t) {
    const column = type === 'message' ? 'messages' : type === 'typing' ? 'typing' : 'reactions';
    return [
      upsert(
        t('rm_heatmap_hourly'),
        src,
        {
          scope: 'k.scope',
          key: 'k.key',
          guild_id: 's.guild_id',
          hour: `date_trunc('hour', s.occurred_at, 'UTC')`,
        },
        { [column]: 'count(*)' },
        {
          from: `cross join lateral (values ('guild', s.guild_id), ('channel', s.channel_id), ('user', ${userOf(type)})) k(scope, key)`,
        },
      ),
    ];
  },
};

const channels: Projection = {
  name: 'channels',
  description: 'Messages, typing and reactions per user, channel and UTC day. Serves channel-diversity.',
  tables: ['rm_user_channel_daily'],
  types: ['message', 'typing', 'reaction_time'],
  apply(type, src, t) {
    return [
      upsert(
        t('rm_user_channel_daily'),
        src,
        { guild_id: 's.guild_id', user_id: userOf(type), channel_id: 's.channel_id', day: DAY },
        { events: 'count(*)' },
      ),
    ];
  },
};

const clients: Projection = {
  name: 'clients',
  description:
    'Presences per client and per combination of clients seen at once, per user and UTC day. Serves multi-client and client-drift.',
  tables: ['rm_client_daily', 'rm_multi_client_daily'],
  types: ['presence'],
  apply(_type, src, t) {
    const keys = { guild_id: `coalesce(s.guild_id, '')`, user_id: 's.user_id', day: DAY };
    return [
      upsert(
        t('rm_client_daily'),
        src,
        { ...keys, client: 'c.client' },
        { presences: 'count(*)' },
        { from: 'cross join lateral (select distinct u as client from unnest(s.clients) u) c' },
      ),
      upsert(
        t('rm_multi_client_daily'),
        `(select * from ${src} x where (select count(distinct c) from unnest(x.clients) c) >= 2)`,
        { ...keys, clients: CLIENT_SET },
        { events: 'count(*)', first_at: 'min(s.occurred_at)', last_at: 'max(s.occurred_at)' },
        { merge: { first_at: 'least', last_at: 'greatest' } },
      ),
    ];
  },
};

const reactions: Projection = {
  name: 'reactions',
  description: 'Reaction deltas per reacting user and UTC day, as value → count. Serves reaction-stats.',
  tables: ['rm_reaction_deltas'],
  types: ['reaction_time'],
  apply(_type, src, t) {
    return [
      upsert(
        t('rm_reaction_deltas'),
        src,
        { guild_id: 's.guild_id', user_id: 's.actor_id', day: DAY, delta_ms: 's.delta_ms' },
        { reactions: 'count(*)' },
      ),
    ];
  },
};

export const PROJECTIONS: readonly Projection[] = [activity, heatmap, channels, clients, reactions];

export function findProjection(name: string): Projection | undefined {
  return PROJECTIONS.find((p) => p.name === name);
}
