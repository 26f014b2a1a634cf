import { CLIENTS } from '@spywatcher/events';
import {
  type AnalyticsName,
  type AnalyticsParams,
  FINAL,
  guildFilter,
  type Params,
  recentStart,
  timeWindow,
} from '../src/projections/analytics.ts';
import { FAST_REACTION_MS } from '../src/projections/definitions.ts';

/**
 * The analytics questions asked of the raw event tables, with no read model: the reference the
 * tests compare every endpoint against, and the baseline of tools/bench/projections. Only the
 * final SELECT (formulas, ordering, limit) is shared with the read-model version.
 */
const DAY = `(occurred_at at time zone 'UTC')::date`;
const W = (q: Params, a: AnalyticsParams) => `${timeWindow(q, a)} ${guildFilter(q, a)}`;
const CLIENT_COUNT = '(select count(distinct c) from unnest(clients) c)';

export const RAW_QUERIES: Record<AnalyticsName, (q: Params, a: AnalyticsParams) => string> = {
  ghosts: (q, a) => `
    with ty as (select user_id, count(*) as n from typing_events where ${W(q, a)} group by user_id),
    me as (select user_id, count(*) as n from message_events where ${W(q, a)} group by user_id),
    t as (select ty.user_id, ty.n as typing, coalesce(me.n, 0) as messages from ty left join me using (user_id))
    ${FINAL.ghosts(q, a)}`,
  lurkers: (q, a) => `
    with p as (
      select user_id, count(*) as presences, count(distinct ${DAY}) as presence_days
      from presence_events where ${W(q, a)} group by user_id
    ),
    act as (
      select user_id from message_events where ${W(q, a)}
      union select user_id from typing_events where ${W(q, a)}
      union select actor_id from reaction_time_events where ${W(q, a)}
    ),
    t as (
      select p.*, (case when exists (select 1 from act where act.user_id = p.user_id) then 1 else 0 end) as active
      from p
    ) ${FINAL.lurkers(q, a)}`,
  heatmap: (q, a) => {
    const filter = (userCol: string) =>
      `${a.userId !== undefined ? `and ${userCol} = ${q.p(a.userId)}` : ''}
       ${a.channelId !== undefined ? `and channel_id = ${q.p(a.channelId)}` : ''}`;
    return `
    with e as (
      select occurred_at, 1 as m, 0 as ty, 0 as r from message_events where ${W(q, a)} ${filter('user_id')}
      union all select occurred_at, 0, 1, 0 from typing_events where ${W(q, a)} ${filter('user_id')}
      union all select occurred_at, 0, 0, 1 from reaction_time_events where ${W(q, a)} ${filter('actor_id')}
    ),
    t as (
      select extract(dow from occurred_at at time zone 'UTC') as weekday,
        extract(hour from occurred_at at time zone 'UTC') as hour,
        sum(m) as messages, sum(ty) as typing, sum(r) as reactions
      from e group by 1, 2
    ) ${FINAL.heatmap(q, a)}`;
  },
  'channel-diversity': (q, a) => `
    with e as (
      select user_id, channel_id from message_events where ${W(q, a)}
      union all select user_id, channel_id from typing_events where ${W(q, a)}
      union all select actor_id, channel_id from reaction_time_events where ${W(q, a)}
    ),
    t as (select user_id, count(distinct channel_id) as channels, count(*) as events from e group by user_id)
    ${FINAL.channelDiversity(q, a)}`,
  'multi-client': (q, a) => `
    with p as (
      select user_id, occurred_at,
        array_to_string(array(select distinct c from unnest(clients) c order by c), ',') as clients
      from presence_events where ${W(q, a)} and ${CLIENT_COUNT} >= 2
    ),
    t as (
      select user_id, clients, count(*) as events, min(occurred_at) as first_at, max(occurred_at) as last_at
      from p group by user_id, clients
    ) ${FINAL.multiClient(q, a)}`,
  'reaction-stats': (q, a) => `
    with t as (
      select actor_id as user_id, delta_ms, count(*) as n
      from reaction_time_events where ${W(q, a)} group by 1, 2
    ) ${FINAL.reactionStats(q, a)}`,
  'role-drift': (q, a) => `
    with t as (
      select user_id, count(*) as changes, sum(cardinality(added_roles)) as added,
        sum(cardinality(removed_roles)) as removed, count(distinct ${DAY}) as change_days
      from role_change_events where ${W(q, a)} group by user_id
    ) ${FINAL.roleDrift(q, a)}`,
  'behavior-shifts': (q, a) => `
    with e as (
      select user_id, occurred_at from message_events where ${W(q, a)}
      union all select user_id, occurred_at from typing_events where ${W(q, a)}
      union all select actor_id, occurred_at from reaction_time_events where ${W(q, a)}
    ),
    t as (
      select user_id,
        count(*) filter (where ${DAY} >= ${recentStart(q, a)}) as recent,
        count(*) filter (where ${DAY} < ${recentStart(q, a)}) as earlier
      from e group by user_id
    ) ${FINAL.behaviorShifts(q, a)}`,
  'client-drift': (q, a) => `
    with t as (
      select user_id, ${CLIENTS.map(
        (
          c,
        ) => `count(*) filter (where ${DAY} >= ${recentStart(q, a)} and '${c}' = any(clients)) as recent_${c},
        count(*) filter (where ${DAY} < ${recentStart(q, a)} and '${c}' = any(clients)) as earlier_${c}`,
      ).join(', ')}
      from presence_events where ${W(q, a)} group by user_id
    ) ${FINAL.clientDrift(q, a)}`,
  suspicion: (q, a) => `
    with e as (
      select user_id, 1 as m, 0 as ty, 0 as f, 0 as mc, 0 as r, 0 as d from message_events where ${W(q, a)}
      union all select user_id, 0, 1, 0, 0, 0, 0 from typing_events where ${W(q, a)}
      union all select actor_id, 0, 0, (delta_ms < ${FAST_REACTION_MS})::int, 0, 0, 0
        from reaction_time_events where ${W(q, a)}
      union all select user_id, 0, 0, 0, (${CLIENT_COUNT} >= 2)::int, 0, 0 from presence_events where ${W(q, a)}
      union all select user_id, 0, 0, 0, 0, 1, 0 from role_change_events where ${W(q, a)}
      union all select user_id, 0, 0, 0, 0, 0, 1 from deleted_message_events where ${W(q, a)}
    ),
    t as (
      select user_id, sum(m) as messages, sum(ty) as typing, sum(f) as fast, sum(mc) as multi,
        sum(r) as roles, sum(d) as deleted
      from e group by user_id
    ) ${FINAL.suspicion(q, a)}`,
};
