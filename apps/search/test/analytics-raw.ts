import { join, type Queryable } from '@spywatcher/db';
import { CLIENTS } from '@spywatcher/events';
import {
  type AnalyticsName,
  type AnalyticsParams,
  FINAL,
  guildFilter,
  type QueryPart,
  recentStart,
  timeWindow,
} from '../src/projections/analytics.ts';
import { FAST_REACTION_MS } from '../src/projections/definitions.ts';

/**
 * The analytics questions asked of the raw event tables, with no read model: the reference the
 * tests compare every endpoint against, and the baseline of tools/bench/projections. Only the
 * final SELECT (formulas, ordering, limit) is shared with the read-model version.
 */
const day = (sql: Queryable) => sql`(occurred_at at time zone 'UTC')::date`;
const W = (sql: Queryable, a: AnalyticsParams) => sql`${timeWindow(sql, a)} ${guildFilter(sql, a)}`;
const clientCount = (sql: Queryable) => sql`(select count(distinct c) from unnest(clients) c)`;

export const RAW_QUERIES: Record<AnalyticsName, QueryPart> = {
  ghosts: (sql, a) => sql`
    with ty as (select user_id, count(*) as n from typing_events where ${W(sql, a)} group by user_id),
    me as (select user_id, count(*) as n from message_events where ${W(sql, a)} group by user_id),
    t as (select ty.user_id, ty.n as typing, coalesce(me.n, 0) as messages from ty left join me using (user_id))
    ${FINAL.ghosts(sql, a)}`,
  lurkers: (sql, a) => sql`
    with p as (
      select user_id, count(*) as presences, count(distinct ${day(sql)}) as presence_days
      from presence_events where ${W(sql, a)} group by user_id
    ),
    act as (
      select user_id from message_events where ${W(sql, a)}
      union select user_id from typing_events where ${W(sql, a)}
      union select actor_id from reaction_time_events where ${W(sql, a)}
    ),
    t as (
      select p.*, (case when exists (select 1 from act where act.user_id = p.user_id) then 1 else 0 end) as active
      from p
    ) ${FINAL.lurkers(sql, a)}`,
  heatmap: (sql, a) => {
    const filter = (userCol: string) =>
      sql`${a.userId !== undefined ? sql`and ${sql(userCol)} = ${a.userId}` : sql``}
       ${a.channelId !== undefined ? sql`and channel_id = ${a.channelId}` : sql``}`;
    return sql`
    with e as (
      select occurred_at, 1 as m, 0 as ty, 0 as r from message_events where ${W(sql, a)} ${filter('user_id')}
      union all select occurred_at, 0, 1, 0 from typing_events where ${W(sql, a)} ${filter('user_id')}
      union all select occurred_at, 0, 0, 1 from reaction_time_events where ${W(sql, a)} ${filter('actor_id')}
    ),
    t as (
      select extract(dow from occurred_at at time zone 'UTC') as weekday,
        extract(hour from occurred_at at time zone 'UTC') as hour,
        sum(m) as messages, sum(ty) as typing, sum(r) as reactions
      from e group by 1, 2
    ) ${FINAL.heatmap(sql, a)}`;
  },
  'channel-diversity': (sql, a) => sql`
    with e as (
      select user_id, channel_id from message_events where ${W(sql, a)}
      union all select user_id, channel_id from typing_events where ${W(sql, a)}
      union all select actor_id, channel_id from reaction_time_events where ${W(sql, a)}
    ),
    t as (select user_id, count(distinct channel_id) as channels, count(*) as events from e group by user_id)
    ${FINAL.channelDiversity(sql, a)}`,
  'multi-client': (sql, a) => sql`
    with p as (
      select user_id, occurred_at,
        array_to_string(array(select distinct c from unnest(clients) c order by c), ',') as clients
      from presence_events where ${W(sql, a)} and ${clientCount(sql)} >= 2
    ),
    t as (
      select user_id, clients, count(*) as events, min(occurred_at) as first_at, max(occurred_at) as last_at
      from p group by user_id, clients
    ) ${FINAL.multiClient(sql, a)}`,
  'reaction-stats': (sql, a) => sql`
    with t as (
      select actor_id as user_id, delta_ms, count(*) as n
      from reaction_time_events where ${W(sql, a)} group by 1, 2
    ) ${FINAL.reactionStats(sql, a)}`,
  'role-drift': (sql, a) => sql`
    with t as (
      select user_id, count(*) as changes, sum(cardinality(added_roles)) as added,
        sum(cardinality(removed_roles)) as removed, count(distinct ${day(sql)}) as change_days
      from role_change_events where ${W(sql, a)} group by user_id
    ) ${FINAL.roleDrift(sql, a)}`,
  'behavior-shifts': (sql, a) => sql`
    with e as (
      select user_id, occurred_at from message_events where ${W(sql, a)}
      union all select user_id, occurred_at from typing_events where ${W(sql, a)}
      union all select actor_id, occurred_at from reaction_time_events where ${W(sql, a)}
    ),
    t as (
      select user_id,
        count(*) filter (where ${day(sql)} >= ${recentStart(sql, a)}) as recent,
        count(*) filter (where ${day(sql)} < ${recentStart(sql, a)}) as earlier
      from e group by user_id
    ) ${FINAL.behaviorShifts(sql, a)}`,
  'client-drift': (sql, a) => sql`
    with t as (
      select user_id, ${join(
        sql,
        CLIENTS.map(
          (
            c,
          ) => sql`count(*) filter (where ${day(sql)} >= ${recentStart(sql, a)} and ${c}::text = any(clients)) as ${sql(`recent_${c}`)},
        count(*) filter (where ${day(sql)} < ${recentStart(sql, a)} and ${c}::text = any(clients)) as ${sql(`earlier_${c}`)}`,
        ),
      )}
      from presence_events where ${W(sql, a)} group by user_id
    ) ${FINAL.clientDrift(sql, a)}`,
  suspicion: (sql, a) => sql`
    with e as (
      select user_id, 1 as m, 0 as ty, 0 as f, 0 as mc, 0 as r, 0 as d from message_events where ${W(sql, a)}
      union all select user_id, 0, 1, 0, 0, 0, 0 from typing_events where ${W(sql, a)}
      union all select actor_id, 0, 0, (delta_ms < ${FAST_REACTION_MS}::int)::int, 0, 0, 0
        from reaction_time_events where ${W(sql, a)}
      union all select user_id, 0, 0, 0, (${clientCount(sql)} >= 2)::int, 0, 0 from presence_events where ${W(sql, a)}
      union all select user_id, 0, 0, 0, 0, 1, 0 from role_change_events where ${W(sql, a)}
      union all select user_id, 0, 0, 0, 0, 0, 1 from deleted_message_events where ${W(sql, a)}
    ),
    t as (
      select user_id, sum(m) as messages, sum(ty) as typing, sum(f) as fast, sum(mc) as multi,
        sum(r) as roles, sum(d) as deleted
      from e group by user_id
    ) ${FINAL.suspicion(sql, a)}`,
};
