import type { EventType } from '@spywatcher/db';
import { CLIENTS } from '@spywatcher/events';

/**
 * A projection declares, per read-model table, its key columns, how each value column merges,
 * and for each event type it reads how a set of events maps to (key, values) groups. From that
 * one declaration the runner derives both statements it needs:
 * - a live batch: per event type, one INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE;
 * - a rebuild: per table, one INSERT of the grouped UNION ALL of every event type into an empty
 *   table (no conflicts to resolve, indexes built afterwards).
 * Every value is a sum/min/max/element-wise sum, so batches may be applied in any order or split,
 * which is what lets the runner keep one checkpoint per event type.
 */
export type Merge = 'sum' | 'least' | 'greatest' | 'hours';

export interface ValueSpec {
  merge: Merge;
  /** The value a source that does not fill this column contributes (SQL). */
  empty: string;
}

export interface Source {
  /** SQL expression per key column, over the event row aliased `s`. */
  keys: Record<string, string>;
  /** Aggregate expression per value column filled by this source. */
  values: Record<string, string>;
  /** Extra FROM items (joins, laterals) after `src s`. */
  from?: string;
  where?: string;
  /** Replaces the source subquery (e.g. to pre-aggregate before an expensive expression). */
  prepare?: (src: string) => string;
}

export interface TableSpec {
  name: string;
  keys: readonly string[];
  values: Record<string, ValueSpec>;
  sources: Partial<Record<EventType, Source>>;
  /**
   * Leading key columns the rebuild writes rows in order of (guild and day): an endpoint's guild
   * and window is then a few contiguous pages instead of rows scattered in hash order. Left out
   * where the queries read few rows anyway (the sort costs rebuild time).
   */
  clusterBy?: readonly string[];
  /**
   * A weekly roll-up of this table: same columns, `day` holding the Monday of the ISO week (UTC).
   * A window's whole weeks are read from it and only its edge days from the daily table, about
   * half the rows for a 28-day window. Sum, least and greatest merges only.
   */
  weekly?: string;
  /**
   * work_mem of this table's rebuild statements, where more than the server's setting pays
   * (see bulkSettings in rebuild.ts).
   */
  bulkWorkMem?: string;
}

export interface Projection {
  name: string;
  description: string;
  tables: readonly TableSpec[];
  types: readonly EventType[];
}

const SUM: ValueSpec = { merge: 'sum', empty: '0' };
const HOURS: ValueSpec = { merge: 'hours', empty: 'null::int[]' };
export const FAST_REACTION_MS = 3000;
const DAY = `(s.occurred_at at time zone 'UTC')::date`;
const CLIENT_COUNT = '(select count(distinct c) from unnest(s.clients) c)';
/**
 * Whether a presence shows two or more distinct clients. Most presences list fewer than two, and
 * the cardinality test spares them the subquery (which was a fifth of the activity rebuild).
 */
const MULTI_CLIENT = `(cardinality(s.clients) >= 2 and ${CLIENT_COUNT} >= 2)`;
/** Distinct clients of a presence event, sorted: the client combination as one value. */
const CLIENT_SET = `array_to_string(array(select distinct c from unnest(s.clients) c order by c), ',')`;
/**
 * Counts per UTC hour of day as a 24-element array (index 1 = 00:00–00:59), over rows already
 * counted per (scope, key, guild, day, hour) by heatmapSource: 24 filters per group instead of
 * per event.
 */
const HOUR_COUNTS = `array[${Array.from({ length: 24 }, (_, h) => `coalesce(sum(s.n) filter (where s.h = ${h}), 0)`).join(', ')}]::int[]`;

function mergeSql(table: string, column: string, spec: ValueSpec): string {
  switch (spec.merge) {
    case 'sum':
      return `${column} = ${table}.${column} + excluded.${column}`;
    case 'hours':
      return `${column} = sw_hours_add(${table}.${column}, excluded.${column})`;
    default:
      return `${column} = ${spec.merge}(${table}.${column}, excluded.${column})`;
  }
}

function sourceSelect(spec: TableSpec, source: Source, src: string, fillAll: boolean): string {
  const values = Object.keys(spec.values)
    .filter((c) => fillAll || c in source.values)
    .map((c) => {
      const value = source.values[c] ?? spec.values[c]!.empty;
      // The rebuild sums these again across event types: sum() over int keeps a bigint
      // accumulator, over bigint (what count(*) returns) a numeric one, several times slower and
      // larger. A count per key within one statement fits an int (a sum of values may not).
      return fillAll && spec.values[c]!.merge === 'sum' && value.startsWith('count(')
        ? `(${value})::int as ${c}`
        : `${value} as ${c}`;
    });
  return `select ${[...spec.keys.map((k) => `${source.keys[k]} as ${k}`), ...values].join(', ')}
from ${source.prepare ? source.prepare(src) : src} s ${source.from ?? ''} ${source.where ? `where ${source.where}` : ''}
group by ${spec.keys.map((_, i) => i + 1).join(', ')}`;
}

/** The Monday of the ISO week of a date expression, as a date (no time zone involved). */
export const mondayOf = (day: string) => `((${day}) - (extract(isodow from (${day}))::int - 1))`;

/** The weekly roll-up of `spec` as a table of its own: the same sources, keyed by week. */
export function weeklySpec(spec: TableSpec): TableSpec {
  const sources: TableSpec['sources'] = {};
  for (const [type, source] of Object.entries(spec.sources) as [EventType, Source][]) {
    sources[type] = { ...source, keys: { ...source.keys, day: mondayOf(source.keys.day!) } };
  }
  return { name: spec.weekly!, keys: spec.keys, values: spec.values, sources, clusterBy: spec.clusterBy };
}

/** Every table a projection writes: its tables and their weekly roll-ups. */
export function projectionTables(projection: Projection): string[] {
  return projection.tables.flatMap((t) => (t.weekly ? [t.name, t.weekly] : [t.name]));
}

/**
 * The aggregate that combines rows of a value column. 'hours' columns are filled by exactly one
 * event type each, so in a rebuild max() picks that one array (roll-ups have no 'hours' columns).
 */
const AGGREGATE: Record<Merge, string> = { sum: 'sum', least: 'min', greatest: 'max', hours: 'max' };

/** The ORDER BY writing a rebuilt table's rows in its clusterBy order (empty without one). */
const clusterOrder = (spec: TableSpec) =>
  spec.clusterBy ? `order by ${spec.clusterBy.map((k) => spec.keys.indexOf(k) + 1).join(', ')}` : '';

/**
 * The rebuild statement filling an empty weekly roll-up from its daily table (already rebuilt):
 * a few hundred thousand grouped rows instead of the event log once more.
 */
export function rollupStatement(spec: TableSpec, daily: string, weekly: string): string {
  const keys = spec.keys.map((k) => (k === 'day' ? `${mondayOf('day')} as day` : k));
  const values = Object.entries(spec.values).map(([c, v]) => `${AGGREGATE[v.merge]}(${c}) as ${c}`);
  return `insert into ${weekly} (${[...spec.keys, ...Object.keys(spec.values)].join(', ')})
select ${[...keys, ...values].join(', ')} from ${daily}
group by ${spec.keys.map((_, i) => i + 1).join(', ')} ${clusterOrder(spec)}`;
}

/** The live-batch statement folding events of `type` in `src` into `table` (live or `__next`). */
export function upsertStatement(spec: TableSpec, type: EventType, src: string, table: string): string {
  const source = spec.sources[type]!;
  const columns = [...spec.keys, ...Object.keys(spec.values).filter((c) => c in source.values)];
  const updates = Object.keys(source.values).map((c) => mergeSql(table, c, spec.values[c]!));
  return `insert into ${table} as ${table} (${columns.join(', ')})
${sourceSelect(spec, source, src, false)}
on conflict (${spec.keys.join(', ')}) do update set ${updates.join(', ')}`;
}

const finalAgg = (column: string, spec: ValueSpec) => {
  const fallback = spec.merge === 'hours' ? `array_fill(0, array[24])` : spec.empty;
  return `coalesce(${AGGREGATE[spec.merge]}(${column}), ${fallback}) as ${column}`;
};

/** The rebuild statement filling an empty `table` from every event type at once. */
export function bulkStatement(spec: TableSpec, srcOf: (type: EventType) => string, table: string): string {
  const parts = (Object.keys(spec.sources) as EventType[]).map((type) =>
    sourceSelect(spec, spec.sources[type]!, srcOf(type), true),
  );
  const values = Object.entries(spec.values).map(([c, v]) => finalAgg(c, v));
  const keys = spec.keys.map((_, i) => i + 1).join(', ');
  return `insert into ${table} (${[...spec.keys, ...Object.keys(spec.values)].join(', ')})
select ${[...spec.keys, ...values].join(', ')}
from (${parts.join('\nunion all\n')}) u
group by ${keys} ${clusterOrder(spec)}`;
}

const userOf = (type: EventType) => (type === 'reaction_time' ? 's.actor_id' : 's.user_id');
const userDayKeys = (type: EventType) => ({
  guild_id: `coalesce(s.guild_id, '')`,
  user_id: userOf(type),
  day: DAY,
});

/** Role changes per guild, user and day: a source of both activity tables. */
const roleChanges: Source = {
  keys: userDayKeys('role_change'),
  values: {
    role_changes: 'count(*)',
    roles_added: 'sum(cardinality(s.added_roles))',
    roles_removed: 'sum(cardinality(s.removed_roles))',
  },
};

const activity: Projection = {
  name: 'activity',
  description:
    'Per user, guild and UTC day: messages, typing, reactions (fast ones too), presences, multi-client presences, role changes (also on their own), deletions. Serves ghosts, lurkers, role-drift, behavior-shifts and suspicion.',
  types: ['message', 'typing', 'reaction_time', 'presence', 'role_change', 'deleted_message'],
  tables: [
    {
      name: 'rm_user_daily',
      weekly: 'rm_user_weekly',
      clusterBy: ['guild_id', 'day'],
      keys: ['guild_id', 'day', 'user_id'],
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
      },
      sources: {
        message: { keys: userDayKeys('message'), values: { messages: 'count(*)' } },
        typing: { keys: userDayKeys('typing'), values: { typing: 'count(*)' } },
        reaction_time: {
          keys: userDayKeys('reaction_time'),
          values: {
            reactions: 'count(*)',
            fast_reactions: `count(*) filter (where s.delta_ms < ${FAST_REACTION_MS})`,
          },
        },
        presence: {
          keys: userDayKeys('presence'),
          values: { presences: 'count(*)', multi_client: `count(*) filter (where ${MULTI_CLIENT})` },
        },
        role_change: roleChanges,
        deleted_message: { keys: userDayKeys('deleted_message'), values: { deleted_messages: 'count(*)' } },
      },
    },
    {
      // Role changes are sparse (a few per user and month): role-drift reads these narrow rows
      // instead of picking them out of the wide per-day activity rows.
      name: 'rm_role_daily',
      clusterBy: ['guild_id', 'day'],
      keys: ['guild_id', 'day', 'user_id'],
      values: { role_changes: SUM, roles_added: SUM, roles_removed: SUM },
      sources: {
        role_change: roleChanges,
      },
    },
  ],
};

const heatmapKeys = { scope: 's.scope', key: 's.key', guild_id: 's.guild_id', day: 's.day' };
/**
 * Events counted per (scope, key, guild, day, hour) for the channel, user and guild scopes in one
 * pass: grouping sets fill three hash tables from each event row (the rebuild's costliest step;
 * a lateral row per scope grouped once took half as long again).
 */
const heatmapSource = (type: EventType) => (src: string) => {
  const user = userOf(type).replace('s.', 'e.');
  return `(select case when grouping(e.channel_id) = 0 then 'channel' when grouping(${user}) = 0 then 'user' else 'guild' end as scope,
      case when grouping(e.channel_id) = 0 then e.channel_id when grouping(${user}) = 0 then ${user} else e.guild_id end as key,
      e.guild_id, (e.occurred_at at time zone 'UTC')::date as day,
      extract(hour from e.occurred_at at time zone 'UTC')::int as h, count(*)::int as n
    from ${src} e
    group by grouping sets ((e.guild_id, 4, 5, e.channel_id), (e.guild_id, 4, 5, ${user}), (e.guild_id, 4, 5)))`;
};

const heatmap: Projection = {
  name: 'heatmap',
  description:
    'Messages, typing and reactions per UTC day and hour (24-slot arrays) for every guild, channel and user. Serves heatmap.',
  types: ['message', 'typing', 'reaction_time'],
  tables: [
    {
      name: 'rm_heatmap_daily',
      keys: ['scope', 'key', 'guild_id', 'day'],
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
  guild_id: 's.guild_id',
  day: DAY,
  user_id: userOf(type),
  channel_id: 's.channel_id',
});

const channels: Projection = {
  name: 'channels',
  description: 'Messages, typing and reactions per user, channel and UTC day. Serves channel-diversity.',
  types: ['message', 'typing', 'reaction_time'],
  tables: [
    {
      name: 'rm_user_channel_daily',
      weekly: 'rm_user_channel_weekly',
      clusterBy: ['guild_id', 'day'],
      keys: ['guild_id', 'day', 'user_id', 'channel_id'],
      values: { events: SUM },
      sources: {
        message: { keys: channelKeys('message'), values: { events: 'count(*)' } },
        typing: { keys: channelKeys('typing'), values: { events: 'count(*)' } },
        reaction_time: { keys: channelKeys('reaction_time'), values: { events: 'count(*)' } },
      },
    },
  ],
};

const clients: Projection = {
  name: 'clients',
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
      values: Object.fromEntries(CLIENTS.map((c) => [c, SUM])),
      sources: {
        presence: {
          keys: userDayKeys('presence'),
          values: Object.fromEntries(
            CLIENTS.map((c) => [c, `count(*) filter (where '${c}' = any(s.clients))`]),
          ),
        },
      },
    },
    {
      name: 'rm_multi_client_daily',
      clusterBy: ['guild_id', 'day'],
      keys: ['guild_id', 'day', 'user_id', 'clients'],
      values: {
        events: SUM,
        first_at: { merge: 'least', empty: 'null::timestamptz' },
        last_at: { merge: 'greatest', empty: 'null::timestamptz' },
      },
      sources: {
        presence: {
          keys: { ...userDayKeys('presence'), clients: CLIENT_SET },
          values: { events: 'count(*)', first_at: 'min(s.occurred_at)', last_at: 'max(s.occurred_at)' },
          where: MULTI_CLIENT,
        },
      },
    },
  ],
};

const reactions: Projection = {
  name: 'reactions',
  description:
    'Per reacting user and UTC day: reactions, fast ones and the sum of deltas, and the deltas as value → count (exact medians). Serves reaction-stats.',
  types: ['reaction_time'],
  tables: [
    {
      name: 'rm_reaction_daily',
      weekly: 'rm_reaction_weekly',
      clusterBy: ['guild_id', 'day'],
      keys: ['guild_id', 'day', 'user_id'],
      values: { reactions: SUM, fast_reactions: SUM, delta_ms_sum: SUM },
      sources: {
        reaction_time: {
          keys: { guild_id: 's.guild_id', day: DAY, user_id: 's.actor_id' },
          values: {
            reactions: 'count(*)',
            fast_reactions: `count(*) filter (where s.delta_ms < ${FAST_REACTION_MS})`,
            delta_ms_sum: 'sum(s.delta_ms)',
          },
        },
      },
    },
    {
      // Read per user (the users on a reaction-stats page), so rows are written in user order.
      name: 'rm_reaction_deltas',
      clusterBy: ['user_id', 'guild_id'],
      keys: ['user_id', 'guild_id', 'day', 'delta_ms'],
      values: { reactions: SUM },
      sources: {
        reaction_time: {
          keys: { guild_id: 's.guild_id', day: DAY, user_id: 's.actor_id', delta_ms: 's.delta_ms' },
          values: { reactions: 'count(*)' },
        },
      },
    },
  ],
};

export const PROJECTIONS: readonly Projection[] = [activity, heatmap, channels, clients, reactions];

export function findProjection(name: string): Projection | undefined {
  return PROJECTIONS.find((p) => p.name === name);
}

/** Live-batch statements of a projection for one event type. */
export function applyStatements(
  projection: Projection,
  type: EventType,
  src: string,
  tableName: (base: string) => string,
): string[] {
  return projection.tables
    .filter((t) => t.sources[type])
    .flatMap((t) => (t.weekly ? [t, weeklySpec(t)] : [t]))
    .map((t) => upsertStatement(t, type, src, tableName(t.name)));
}
