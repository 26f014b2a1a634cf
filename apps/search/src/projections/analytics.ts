import {
  createSql,
  type Fragment,
  join,
  type Queryable,
  type Sql,
  type TransactionSql,
} from '@spywatcher/db';
import { CLIENTS } from '@spywatcher/events';
import { FAST_REACTION_MS, PROJECTIONS } from './definitions.ts';

/**
 * The analytics questions, answered from the read models. Windows are whole UTC days (`from` and
 * `to` inclusive) because the read models aggregate per day (per hour for the heatmap): that is
 * what makes any window answerable from aggregates and equal to the same question asked of the
 * raw event tables (apps/search/test/analytics-raw.ts asks it; the tests compare).
 *
 * Each query ends in a "final" SELECT shared with the raw version: only how the per-user totals
 * are obtained differs (aggregates here, event rows there).
 */

export interface WindowParams {
  guildId?: string;
  /** YYYY-MM-DD, inclusive. */
  from: string;
  /** YYYY-MM-DD, inclusive. */
  to: string;
  limit: number;
}

export interface AnalyticsParams extends WindowParams {
  minTyping?: number;
  channelId?: string;
  userId?: string;
  minReactions?: number;
  threshold?: number;
  minScore?: number;
}

export type AnalyticsName =
  | 'ghosts'
  | 'lurkers'
  | 'heatmap'
  | 'channel-diversity'
  | 'multi-client'
  | 'reaction-stats'
  | 'role-drift'
  | 'behavior-shifts'
  | 'client-drift'
  | 'suspicion';

/** A query (or a part of one) built for its parameters. */
export type QueryPart = (sql: Queryable, a: AnalyticsParams) => Fragment;

/** A timestamptz as ISO 8601 text in UTC, milliseconds. */
export const iso = (sql: Queryable, col: Fragment) =>
  sql`to_char(${col} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** Condition on a day column for the window. */
export const dayWindow = (sql: Queryable, a: WindowParams, col: Fragment = sql`day`) =>
  sql`${col} between ${a.from}::date and ${a.to}::date`;

/** Condition on a timestamptz column for the window (index-friendly). */
export const timeWindow = (sql: Queryable, a: WindowParams, col: Fragment = sql`occurred_at`) =>
  sql`${col} >= ${a.from}::date::timestamp at time zone 'UTC' and ${col} < (${a.to}::date + 1)::timestamp at time zone 'UTC'`;

export const guildFilter = (sql: Queryable, a: WindowParams, col: Fragment = sql`guild_id`) =>
  a.guildId === undefined ? sql`` : sql`and ${col} = ${a.guildId}`;

const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

export interface WindowPlan {
  /** Day ranges (inclusive) read from the daily table. */
  days: [string, string][];
  /** Week ranges (Mondays, inclusive) read from the weekly roll-up. */
  weeks: [string, string][];
  /** Day ranges read from the daily table and subtracted: a week's days outside the window. */
  minus: [string, string][];
}

/**
 * How to sum a window (whole UTC days, YYYY-MM-DD, inclusive) from day and week rows: the whole
 * ISO weeks inside it from the roll-up, the other days from the daily table. With `subtract`,
 * a week mostly inside (four to six days) is read as its roll-up row minus the days outside, so
 * no edge costs more than three days of rows. Values are counts, so that is exact; a group whose
 * sums are all zero then had no event in the window, and the query must leave it out.
 */
export function splitWindow(from: string, to: string, subtract = false): WindowPlan {
  const lo = Date.parse(`${from}T00:00:00Z`);
  const hi = Date.parse(`${to}T00:00:00Z`);
  const plan: WindowPlan = { days: [], weeks: [], minus: [] };
  const isoDow = (ms: number) => ((new Date(ms).getUTCDay() + 6) % 7) + 1;
  const push = (list: [string, string][], a: number, b: number, step: number) => {
    const last = list[list.length - 1];
    if (last && Date.parse(`${last[1]}T00:00:00Z`) + step === a) last[1] = isoDay(b);
    else list.push([isoDay(a), isoDay(b)]);
  };
  for (let monday = lo - (isoDow(lo) - 1) * DAY_MS; monday <= hi; monday += 7 * DAY_MS) {
    const sunday = monday + 6 * DAY_MS;
    const a = Math.max(lo, monday);
    const b = Math.min(hi, sunday);
    const inside = (b - a) / DAY_MS + 1;
    if (inside === 7 || (subtract && inside >= 4)) {
      push(plan.weeks, monday, monday, 7 * DAY_MS);
      if (a > monday) push(plan.minus, monday, a - DAY_MS, DAY_MS);
      if (b < sunday) push(plan.minus, b + DAY_MS, sunday, DAY_MS);
    } else push(plan.days, a, b, DAY_MS);
  }
  return plan;
}

/**
 * The rows of a per-day read model (`daily`, a table with a weekly roll-up) for the window (and
 * guild), whole weeks taken from its roll-up: a FROM item with the given columns, `day` being a
 * week's Monday on roll-up rows. Only the columns the query uses: the union's rows are formed
 * from them, and wide rows cost (ghosts at 2,000,000 events: 10.2 -> 8.0 ms); a value may also be
 * an expression over the value columns, `[alias, expression]`. `subtract` turns
 * that plan on (see splitWindow): subtracted rows carry their value columns negated.
 *
 * With `splitRecent` the last 7 days and the days before are planned as two parts of one read,
 * and each value column `c` comes out twice: `recent_c` (the last 7 days) and `earlier_c` (the
 * rest; 0 on rows of the other part). Every table range is read once with one sign per part: the
 * days of the week where the parts meet, which one part's week row adds and the other's
 * subtracts, are one read that carries both signs (client-drift at 5,000,000 events: ~7% fewer
 * rows and no FILTER aggregates, 15.7 -> 14.9 ms).
 *
 * A column `{ daysOf, as }` counts days from a weekday-bits column (a `bit_or` of 1 << (ISO
 * weekday - 1)): each row gives the number of its days inside the window, a week row's days
 * outside it masked off and a subtracted day row 0. Summed per user within one guild, where every
 * day is on one row, that is the number of days of the window with a bit set.
 *
 * With `nonzero`, rows whose value columns are all zero are left out: a query whose answer
 * cannot list a user with no events among them (ghosts, behavior-shifts, client-drift, lurkers)
 * then groups fewer rows (a third fewer for ghosts, whose visitors' week rows often hold only
 * presences).
 */
export function windowRows(
  sql: Queryable,
  a: WindowParams,
  daily: string,
  columns: readonly (string | [alias: string, expression: Fragment] | { daysOf: string; as: string })[],
  options: { splitRecent?: boolean; subtract?: boolean; nonzero?: boolean } = {},
): Fragment {
  const spec = PROJECTIONS.flatMap((p) => p.tables).find((t) => t.name === daily);
  if (!spec?.weekly) throw new Error(`${daily} is not a read model with a weekly roll-up`);
  const countsDays = columns.some((c) => typeof c === 'object' && !Array.isArray(c));
  if (countsDays && options.splitRecent) throw new Error('days are counted over the whole window only');
  const toMs = Date.parse(`${a.to}T00:00:00Z`);
  const recentMs = Math.max(Date.parse(`${a.from}T00:00:00Z`), toMs - 6 * DAY_MS);
  // Part 0 is the whole window, or with splitRecent the earlier days; part 1 the last 7 days.
  const parts: [string, string][] = options.splitRecent
    ? [
        [a.from, isoDay(recentMs - DAY_MS)],
        [isoDay(recentMs), a.to],
      ]
    : [[a.from, a.to]];
  // The sign each part gives a day's (or a week's) rows: 1 added, -1 subtracted, 0 not read.
  const dayCoefficients = new Map<number, number[]>();
  const weekCoefficients = new Map<number, number[]>();
  const mark = (
    into: Map<number, number[]>,
    ranges: [string, string][],
    step: number,
    part: number,
    sign: number,
  ) => {
    for (const [lo, hi] of ranges) {
      for (let t = Date.parse(`${lo}T00:00:00Z`); t <= Date.parse(`${hi}T00:00:00Z`); t += step) {
        const coefficients = into.get(t) ?? parts.map(() => 0);
        coefficients[part]! += sign;
        into.set(t, coefficients);
      }
    }
  };
  parts.forEach(([from, to], part) => {
    if (from > to) return;
    const plan = splitWindow(from, to, options.subtract === true);
    mark(dayCoefficients, plan.days, DAY_MS, part, 1);
    mark(dayCoefficients, plan.minus, DAY_MS, part, -1);
    mark(weekCoefficients, plan.weeks, 7 * DAY_MS, part, 1);
  });
  // A week's days inside the window as weekday bits, after its signs: weeks with other days
  // inside are other ranges.
  const fromMs = Date.parse(`${a.from}T00:00:00Z`);
  for (const [monday, coefficients] of countsDays ? weekCoefficients : []) {
    let inside = 0;
    for (let d = 0; d < 7; d++) {
      const t = monday + d * DAY_MS;
      if (t >= fromMs && t <= toMs) inside |= 1 << d;
    }
    coefficients.push(inside);
  }
  const values = columns.flatMap((column) =>
    typeof column === 'string'
      ? column in spec.values
        ? [sql`${sql(column)} <> 0`]
        : []
      : Array.isArray(column)
        ? [sql`(${column[1]}) <> 0`]
        : [sql`${sql(column.daysOf)} <> 0`],
  );
  const nonzero = options.nonzero ? sql`and (${join(sql, values, sql` or `)})` : sql``;
  const signed = (value: Fragment, sign: number) =>
    sign === 1 ? value : sign === -1 ? sql`-${value}` : sql`0`;
  const select = (table: string, lo: number, hi: number, coefficients: number[], week: boolean) => {
    const list = columns.flatMap((column) => {
      if (typeof column === 'object' && !Array.isArray(column)) {
        const bits = sql(column.daysOf);
        const days = week
          ? sql`bit_count((${bits} & ${coefficients[parts.length]!}::int)::bit(7))::int`
          : coefficients[0] === 1
            ? sql`bit_count(${bits}::bit(7))::int`
            : sql`0`;
        return [sql`${days} as ${sql(column.as)}`];
      }
      if (typeof column === 'string' && !(column in spec.values)) return [sql`${sql(column)}`];
      const [c, value] =
        typeof column === 'string' ? [column, sql`${sql(column)}`] : [column[0], sql`(${column[1]})`];
      if (!options.splitRecent) return [sql`${signed(value, coefficients[0]!)} as ${sql(c)}`];
      return [
        sql`${signed(value, coefficients[1]!)} as ${sql(`recent_${c}`)}`,
        sql`${signed(value, coefficients[0]!)} as ${sql(`earlier_${c}`)}`,
      ];
    });
    return sql`select ${join(sql, list)} from ${sql(table)}
      where day between ${isoDay(lo)}::date and ${isoDay(hi)}::date ${guildFilter(sql, a)} ${nonzero}`;
  };
  const branches: Fragment[] = [];
  // Consecutive days (weeks) with the same signs are one range.
  const emit = (table: string, from: Map<number, number[]>, step: number) => {
    const week = step !== DAY_MS;
    const keys = [...from.keys()].sort((x, y) => x - y);
    let lo = 0;
    for (let i = 0; i < keys.length; i++) {
      const same = (j: number) => from.get(keys[j]!)!.join() === from.get(keys[i]!)!.join();
      if (i === 0 || keys[i]! - keys[i - 1]! !== step || !same(i - 1)) lo = keys[i]!;
      const last = i === keys.length - 1 || keys[i + 1]! - keys[i]! !== step || !same(i + 1);
      if (last && from.get(keys[i]!)!.some((x) => x !== 0))
        branches.push(select(table, lo, keys[i]!, from.get(keys[i]!)!, week));
    }
  };
  emit(daily, dayCoefficients, DAY_MS);
  emit(spec.weekly, weekCoefficients, 7 * DAY_MS);
  return sql`(${join(sql, branches, sql` union all `)}) r`;
}

/** First day of the "this week" part of a shift window: the last 7 days up to `to`. */
export const recentStart = (sql: Queryable, a: WindowParams) => sql`(${a.to}::date - 6)`;
/** Number of days before the recent 7, as an integer. */
export const earlierDays = (sql: Queryable, a: WindowParams) =>
  sql`(${a.to}::date - ${a.from}::date + 1 - 7)`;

/**
 * SQL for n / d rounded half up, in integer arithmetic, for integer expressions n >= 0 and d > 0:
 * (2n + d) / 2d. The final steps below compute every fractional number with it from the exact
 * counts (in bigint thousandths, tenths or hundredths), which is numeric round(n / d, k)
 * exactly, rounded once, and costs no numeric division per user.
 */
const divRoundHalfUp = (sql: Queryable, n: Fragment, d: Fragment) =>
  sql`((2 * (${n}) + (${d})) / (2 * (${d})))`;

/** divRoundHalfUp for an n of either sign: half away from zero, as numeric round() does. */
const divRound = (sql: Queryable, n: Fragment, d: Fragment) =>
  sql`(case when (${n}) < 0 then -${divRoundHalfUp(sql, sql`-(${n})`, d)} else ${divRoundHalfUp(sql, n, d)} end)`;

/** The mean n / d in tenths, rounded once (imported legacy deltas may be negative). */
const avgTenths = (sql: Queryable, n: Fragment, d: Fragment) => divRound(sql, sql`10 * ${n}`, d);

/**
 * An ORDER BY key of the exact value n / d (integer expressions, n >= 0, d > 0): n / d scaled
 * by 10^30 and truncated. Two different fractions with denominators below 10^15 differ by more than
 * 10^-30, so the key orders them as the exact values and ties only equal values, where ordering
 * by the rounded value (or a float8) ties or swaps values that differ in a later digit.
 */
const exactKey = (sql: Queryable, n: Fragment, d: Fragment) => sql`div((${n})::numeric * 1e30, ${d})`;

/** A JSON number with 2 or 3 decimals from an integer count of 10^-k (numeric: no float digits). */
const decimals = (sql: Queryable, units: Fragment, k: 2 | 3) =>
  k === 2 ? sql`(${units}) * 1e-2` : sql`(${units}) * 1e-3`;

/**
 * Final SELECTs, each over a CTE `t` whose columns the comment names (`with t as (…)` comes
 * first; reaction-stats, behavior-shifts, client-drift and suspicion add CTEs of their own, so
 * theirs start with a comma). Every number is computed from the exact counts and rounded once,
 * at the end; filters and orders compare exact values, and ties go to the smaller user id, so
 * `limit` cuts the same list every time.
 */
export const FINAL = {
  /** t(user_id, typing, messages) */
  ghosts: (sql: Queryable, a: AnalyticsParams) => sql`
    select user_id as "userId", typing::int as typing, messages::int as messages,
      ${divRoundHalfUp(sql, sql`1000 * typing`, sql`greatest(messages, 1)`)}::float8 / 1000 as ratio
    from t where typing >= ${a.minTyping ?? 10}::int and typing > messages
    order by ${exactKey(sql, sql`typing`, sql`greatest(messages, 1)`)} desc, user_id limit ${a.limit}::int`,
  /** t(user_id, presences, presence_days, active) */
  lurkers: (sql: Queryable, a: AnalyticsParams) => sql`
    select user_id as "userId", presences::int as presences, presence_days::int as "presenceDays"
    from t where presences > 0 and active = 0
    order by presences desc, user_id limit ${a.limit}::int`,
  /** t(weekday, hour, messages, typing, reactions) summed already; empty cells are left out */
  heatmap: (sql: Queryable, a: AnalyticsParams) => sql`
    select weekday::int as weekday, hour::int as hour, messages::int as messages, typing::int as typing,
      reactions::int as reactions, (messages + typing + reactions)::int as total
    from t where messages + typing + reactions > 0
    order by weekday, hour limit ${a.limit}::int`,
  /** t(user_id, channels, events) */
  channelDiversity: (sql: Queryable, a: AnalyticsParams) => sql`
    select user_id as "userId", channels::int as channels, events::int as events
    from t order by channels desc, events desc, user_id limit ${a.limit}::int`,
  /**
   * t(user_id, clients, events, first_at, last_at): one row per user and client combination. The
   * page's users are ranked first and their times and combinations (JSON) built for them alone.
   */
  multiClient: (sql: Queryable, a: AnalyticsParams) => sql`
    , page as (
      select user_id, sum(events) as events from t group by user_id
      order by events desc, user_id limit ${a.limit}::int
    )
    select p.user_id as "userId", p.events::int as events,
      ${iso(sql, sql`min(t.first_at)`)} as "firstAt", ${iso(sql, sql`max(t.last_at)`)} as "lastAt",
      json_agg(json_build_object('clients', t.clients, 'events', t.events::int,
        'firstAt', ${iso(sql, sql`t.first_at`)}, 'lastAt', ${iso(sql, sql`t.last_at`)}) order by t.clients) as combinations
    from page p join t on t.user_id = p.user_id
    group by p.user_id, p.events
    order by p.events desc, p.user_id`,
  /** t(user_id, delta_ms, n): how many reactions of each delta */
  reactionStats: (sql: Queryable, a: AnalyticsParams) => sql`
    , c as (
      select user_id, delta_ms, n,
        sum(n) over (partition by user_id order by delta_ms) as cum,
        sum(n) over (partition by user_id) as total
      from t
    )
    select user_id as "userId", total::int as reactions,
      ${avgTenths(sql, sql`sum(delta_ms::bigint * n)::bigint`, sql`total::bigint`)}::float8 / 10 as "avgMs",
      min(delta_ms) filter (where cum * 2 >= total) as "medianMs",
      coalesce(sum(n) filter (where delta_ms < ${FAST_REACTION_MS}::int), 0)::int as "fastReactions"
    from c group by user_id, total
    having total >= ${a.minReactions ?? 1}::int
    order by "fastReactions" desc, reactions desc, user_id limit ${a.limit}::int`,
  /** t(user_id, changes, added, removed, change_days) */
  roleDrift: (sql: Queryable, a: AnalyticsParams) => sql`
    select user_id as "userId", changes::int as changes, added::int as "rolesAdded",
      removed::int as "rolesRemoved", change_days::int as "changeDays"
    from t where changes > 0
    order by changes desc, user_id limit ${a.limit}::int`,
  /**
   * t(user_id, recent, earlier): activity in the last 7 days and before. With D the days before
   * the last 7, the weekly average is 7·earlier / D and change = (recent − avg) / max(avg, 1)
   * = (recent·D − 7·earlier) / max(7·earlier, D): one fraction of integers (n / m), so change is
   * rounded from the exact value (not from the rounded average), the threshold compares
   * |n| >= threshold·m and the order uses the exact |change|. direction is the exact sign.
   */
  behaviorShifts: (sql: Queryable, a: AnalyticsParams) => sql`
    , w as (
      select user_id, coalesce(recent, 0)::bigint as recent, 7 * coalesce(earlier, 0)::bigint as e7,
        ${earlierDays(sql, a)}::bigint as days
      from t where coalesce(recent, 0) + coalesce(earlier, 0) > 0
    ), x as (
      select user_id, recent, e7, days, recent * days - e7 as n, greatest(e7, days) as m from w
    )
    select user_id as "userId", recent::int as "thisWeek",
      ${divRoundHalfUp(sql, sql`1000 * e7`, sql`days`)}::float8 / 1000 as "previousWeeklyAverage",
      ${divRound(sql, sql`1000 * n`, sql`m`)}::float8 / 1000 as change,
      case when n >= 0 then 'up' else 'down' end as direction
    from x where abs(n) >= ${a.threshold ?? 1}::numeric * m
    order by ${exactKey(sql, sql`abs(n)`, sql`m`)} desc, user_id limit ${a.limit}::int`,
  /**
   * t(user_id, recent_<client>, earlier_<client> for each of CLIENTS): presences showing each
   * client in the last 7 days and before. distance = sum |r/rt - e/et| / 2 over the clients
   * = S / (2 * rt * et) with S = sum |r * et - e * rt|: the threshold compares S exactly, the
   * order uses the exact value, and it is rounded to thousandths once (divRoundHalfUp), as are
   * the shares. The mixes (JSON) are built for the page's users only, listing the clients seen
   * in the window.
   */
  clientDrift: (sql: Queryable, a: AnalyticsParams) => {
    const column = (part: 'recent' | 'earlier', c: string) => sql(`${part}_${c}`);
    const sum = (part: 'recent' | 'earlier') =>
      join(
        sql,
        CLIENTS.map((c) => column(part, c)),
        sql` + `,
      );
    const mix = (part: 'recent' | 'earlier', total: Fragment) => sql`(
        select json_object_agg(c, ${decimals(sql, divRoundHalfUp(sql, part === 'recent' ? sql`1000 * r` : sql`1000 * e`, total), 3)} order by c)
        from (values ${join(
          sql,
          CLIENTS.map((c) => sql`(${c}::text, ${column('recent', c)}, ${column('earlier', c)})`),
        )}) v(c, r, e)
        where r + e > 0)`;
    const key = exactKey(sql, sql`s`, sql`m`);
    return sql`
    , u as (
      select *, ${sum('recent')} as rt, ${sum('earlier')} as et from t
    ), d as (
      select *, ${join(
        sql,
        CLIENTS.map((c) => sql`abs(${column('recent', c)} * et - ${column('earlier', c)} * rt)`),
        sql` + `,
      )} as s,
        2 * rt * et as m
      from u where rt > 0 and et > 0
    ), page as (
      select * from d where s >= ${a.threshold ?? 0.5}::numeric * m
      order by ${key} desc, user_id limit ${a.limit}::int
    )
    select user_id as "userId", ${divRoundHalfUp(sql, sql`1000 * s`, sql`m`)}::float8 / 1000 as distance,
      ${mix('recent', sql`rt`)} as "thisWeek",
      ${mix('earlier', sql`et`)} as "previousWeeks"
    from page order by ${key} desc, user_id`;
  },
  /**
   * t(user_id, messages, typing, fast, multi, roles, deleted). In hundredths of a point, with
   * M = messages + 1: ghost = min(30·M, 3·typing) / M, deletions = min(10·M, 10·deleted) / M,
   * and the other three are whole hundredths; the score is their exact sum n / (100·M), rounded
   * once (each component's points are rounded on their own for display).
   */
  suspicion: (sql: Queryable, a: AnalyticsParams) => sql`
    , s as (
      select *, messages + 1 as mm, least(30 * (messages + 1), 3 * typing) as g,
        least(10 * (messages + 1), 10 * deleted) as dl,
        least(2500, 250 * fast) as h_fast, least(2000, 100 * multi) as h_multi, least(1500, 300 * roles) as h_roles
      from t
    ), d as (
      select *, 100 * (g + dl) + (h_fast + h_multi + h_roles) * mm as n, 100 * mm as m from s
    )
    select user_id as "userId", ${divRoundHalfUp(sql, sql`n`, sql`mm`)}::float8 / 100 as score,
      json_build_object(
        'ghost', json_build_object('points', ${decimals(sql, divRoundHalfUp(sql, sql`100 * g`, sql`mm`), 2)}, 'typing', typing, 'messages', messages),
        'fastReactions', json_build_object('points', ${decimals(sql, sql`h_fast`, 2)}, 'count', fast),
        'multiClient', json_build_object('points', ${decimals(sql, sql`h_multi`, 2)}, 'count', multi),
        'roleChurn', json_build_object('points', ${decimals(sql, sql`h_roles`, 2)}, 'count', roles),
        'deletions', json_build_object('points', ${decimals(sql, divRoundHalfUp(sql, sql`100 * dl`, sql`mm`), 2)}, 'count', deleted, 'messages', messages)
      ) as components
    from d where n >= ${a.minScore ?? 0}::numeric * m
    order by ${exactKey(sql, sql`n`, sql`m`)} desc, user_id limit ${a.limit}::int`,
};

const CLIENT_SUMS = (sql: Queryable) =>
  join(
    sql,
    CLIENTS.flatMap((c) => [
      sql`sum(${sql(`recent_${c}`)}) as ${sql(`recent_${c}`)}`,
      sql`sum(${sql(`earlier_${c}`)}) as ${sql(`earlier_${c}`)}`,
    ]),
  );

/** Read-model versions: the per-user totals come from the aggregates. */
export const READ_MODEL_QUERIES: Record<AnalyticsName, QueryPart> = {
  ghosts: (sql, a) => sql`
    with t as (
      select user_id, sum(typing)::bigint as typing, sum(messages)::bigint as messages
      from ${windowRows(sql, a, 'rm_user_daily', ['user_id', 'typing', 'messages'], { subtract: true, nonzero: true })}
      group by user_id
    ) ${FINAL.ghosts(sql, a)}`,
  // Within one guild every day of a user is on one row, daily or weekly: whole weeks come from the
  // roll-up, their presence days counted from its weekday bits. Across guilds one day may be on
  // several rows (a guild each): the daily rows are summed per day, then counted.
  lurkers: (sql, a) =>
    a.guildId === undefined
      ? sql`
    with d as (
      select user_id, day, sum(presences)::bigint as presences,
        sum(messages + typing + reactions)::bigint as active
      from rm_user_daily where ${dayWindow(sql, a)}
      group by user_id, day
    ), t as (
      select user_id, sum(presences)::bigint as presences,
        count(*) filter (where presences > 0) as presence_days, sum(active)::bigint as active
      from d group by user_id
    ) ${FINAL.lurkers(sql, a)}`
      : sql`
    with t as (
      select user_id, sum(presences)::bigint as presences, sum(presence_days)::bigint as presence_days,
        sum(active)::bigint as active
      from ${windowRows(
        sql,
        a,
        'rm_user_daily',
        [
          'user_id',
          'presences',
          ['active', sql`messages + typing + reactions`],
          { daysOf: 'presence_weekdays', as: 'presence_days' },
        ],
        { subtract: true, nonzero: true },
      )}
      group by user_id
    ) ${FINAL.lurkers(sql, a)}`,
  heatmap: (sql, a) => {
    const scope = a.userId !== undefined ? 'user' : a.channelId !== undefined ? 'channel' : 'guild';
    const key = a.userId ?? a.channelId ?? a.guildId;
    return sql`
    with t as (
      select extract(dow from day) as weekday, h - 1 as hour,
        sum(messages[h]) as messages, sum(typing[h]) as typing, sum(reactions[h]) as reactions
      from rm_heatmap_daily cross join generate_series(1, 24) h
      where scope = ${scope} ${key === undefined ? sql`` : sql`and key = ${key}`} ${guildFilter(sql, a)}
        and ${dayWindow(sql, a)}
      group by 1, 2
    ) ${FINAL.heatmap(sql, a)}`;
  },
  // Per user and channel first, then count them: hashed instead of a sorted count(distinct). A
  // week mostly inside the window is its roll-up row minus the days outside (fewer rows than its
  // days), so a channel counts where its sum in the window is not zero.
  'channel-diversity': (sql, a) => sql`
    with c as (
      select user_id, channel_id, sum(events) as events
      from ${windowRows(sql, a, 'rm_user_channel_daily', ['user_id', 'channel_id', 'events'], { subtract: true })}
      group by user_id, channel_id
    ), t as (
      select user_id, count(*) filter (where events > 0) as channels, sum(events) as events
      from c group by user_id having sum(events) > 0
    ) ${FINAL.channelDiversity(sql, a)}`,
  // First and last times are not differences: no week is read as its roll-up minus days.
  'multi-client': (sql, a) => sql`
    with t as (
      select user_id, clients, sum(events) as events, min(first_at) as first_at, max(last_at) as last_at
      from ${windowRows(sql, a, 'rm_multi_client_daily', ['user_id', 'clients', 'events', 'first_at', 'last_at'])}
      group by user_id, clients
    ) ${FINAL.multiClient(sql, a)}`,
  // Ranking needs only counts, fast counts and delta sums (rm_reaction_daily); the exact median
  // needs every delta, read for the page's users alone. Same answer as FINAL.reactionStats over
  // all deltas (the tests compare), without sorting the deltas of users who are not shown. Each
  // user's median is its own subquery: its deltas grouped and summed in delta order up to the
  // first that reaches half of the user's reactions (the total ranked by, from the same events).
  // One join, sort and two window passes over all 50 users' deltas took twice as long.
  'reaction-stats': (sql, a) => sql`
    with u as (
      select user_id, sum(reactions) as total, sum(fast_reactions) as fast, sum(delta_ms_sum) as dsum
      from ${windowRows(sql, a, 'rm_reaction_daily', ['user_id', 'reactions', 'fast_reactions', 'delta_ms_sum'])}
      group by user_id
      having sum(reactions) >= ${a.minReactions ?? 1}::int
      order by fast desc, total desc, user_id limit ${a.limit}::int
    )
    select u.user_id as "userId", u.total::int as reactions,
      ${avgTenths(sql, sql`u.dsum::bigint`, sql`u.total`)}::float8 / 10 as "avgMs",
      (
        select x.delta_ms from (
          select d.delta_ms, sum(sum(d.reactions)) over (order by d.delta_ms) as cum
          from rm_reaction_deltas d
          where d.user_id = u.user_id and ${dayWindow(sql, a, sql`d.day`)} ${guildFilter(sql, a, sql`d.guild_id`)}
          group by d.delta_ms
        ) x where x.cum * 2 >= u.total order by x.delta_ms limit 1
      ) as "medianMs",
      u.fast::int as "fastReactions"
    from u
    order by u.fast desc, u.total desc, u.user_id`,
  // Within one guild whole weeks come from the roll-up, their days with changes counted from its
  // weekday bits. Across guilds a day may have changes in several: a sorted count(distinct day).
  'role-drift': (sql, a) =>
    a.guildId === undefined
      ? sql`
    with t as (
      select user_id, sum(role_changes) as changes, sum(roles_added) as added, sum(roles_removed) as removed,
        count(distinct day) as change_days
      from rm_role_daily where ${dayWindow(sql, a)}
      group by user_id
    ) ${FINAL.roleDrift(sql, a)}`
      : sql`
    with t as (
      select user_id, sum(role_changes) as changes, sum(roles_added) as added, sum(roles_removed) as removed,
        sum(change_days) as change_days
      from ${windowRows(
        sql,
        a,
        'rm_role_daily',
        [
          'user_id',
          'role_changes',
          'roles_added',
          'roles_removed',
          { daysOf: 'change_weekdays', as: 'change_days' },
        ],
        { subtract: true },
      )}
      group by user_id
    ) ${FINAL.roleDrift(sql, a)}`,
  'behavior-shifts': (sql, a) => sql`
    with t as (
      select user_id, sum(recent_activity) as recent, sum(earlier_activity) as earlier
      from ${windowRows(
        sql,
        a,
        'rm_user_daily',
        ['user_id', ['activity', sql`messages + typing + reactions`]],
        { splitRecent: true, subtract: true, nonzero: true },
      )}
      group by user_id
    ) ${FINAL.behaviorShifts(sql, a)}`,
  // A row per user and day (week) with a column per client: one grouping by user.
  'client-drift': (sql, a) => sql`
    with t as (
      select user_id, ${CLIENT_SUMS(sql)}
      from ${windowRows(sql, a, 'rm_client_daily', ['user_id', ...CLIENTS], {
        splitRecent: true,
        subtract: true,
        nonzero: true,
      })}
      group by user_id
    ) ${FINAL.clientDrift(sql, a)}`,
  suspicion: (sql, a) => sql`
    with t as (
      select user_id, sum(messages)::bigint as messages, sum(typing)::bigint as typing,
        sum(fast_reactions)::bigint as fast, sum(multi_client)::bigint as multi,
        sum(role_changes)::bigint as roles, sum(deleted_messages)::bigint as deleted
      from ${windowRows(sql, a, 'rm_user_daily', ['user_id', 'messages', 'typing', 'fast_reactions', 'multi_client', 'role_changes', 'deleted_messages'])}
      group by user_id
    ) ${FINAL.suspicion(sql, a)}`,
};

/**
 * Session settings of the read-model queries (see runAnalytics for why). The search service
 * opens its analytics pool with them (createAnalyticsSql), which spares each request the
 * transaction that would otherwise set them: three round trips, ~3 ms at p95 on a busy machine.
 */
export const ANALYTICS_SETTINGS = {
  jit: 'off',
  plan_cache_mode: 'force_custom_plan',
  max_parallel_workers_per_gather: '0',
};

/** The pool for analytics reads, its sessions set up by ANALYTICS_SETTINGS. */
export function createAnalyticsSql(config: {
  DATABASE_URL: string;
  SEARCH_DATABASE_URL?: string;
  DATABASE_STATEMENT_TIMEOUT_MS: number;
}): Sql {
  return createSql({
    // the read models are reads: a replica (SEARCH_DATABASE_URL) serves them when set
    url: config.SEARCH_DATABASE_URL || config.DATABASE_URL,
    applicationName: 'spywatcher-analytics',
    max: 5,
    statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
    settings: ANALYTICS_SETTINGS,
  });
}

export async function runAnalytics(
  sql: Queryable,
  queries: Record<AnalyticsName, QueryPart>,
  name: AnalyticsName,
  params: AnalyticsParams,
  options: { sessionReady?: boolean } = {},
): Promise<Record<string, unknown>[]> {
  const query = queries[name];
  if (options.sessionReady) return [...(await sql<Record<string, unknown>[]>`${query(sql, params)}`)];
  // At a few million events these aggregates cost enough for the planner to JIT-compile them,
  // which takes longer (tens of ms) than running them. And a cached generic plan cannot see how
  // narrow the window or the guild is: plan each call for its own parameters (planning is < 1 ms).
  // Read-model queries aggregate tens of thousands of rows: starting parallel workers costs them
  // more than it saves, and on a busy server the workers wait for a core (a 28-day guild window
  // went from ~25 to ~50 ms with two workers on a loaded 2-core machine). Raw-table questions
  // scan far more and keep the server's setting.
  const { max_parallel_workers_per_gather: _, ...rawSettings } = ANALYTICS_SETTINGS;
  const settings: Record<string, string> = queries === READ_MODEL_QUERIES ? ANALYTICS_SETTINGS : rawSettings;
  const run = async (tx: TransactionSql) => {
    // One round trip for all of them.
    await tx`select set_config(name, value, true)
      from unnest(${Object.keys(settings)}::text[], ${Object.values(settings)}::text[]) as s(name, value)`;
    return [...(await tx<Record<string, unknown>[]>`${query(tx, params)}`)];
  };
  return 'savepoint' in sql ? run(sql) : sql.begin(run);
}
