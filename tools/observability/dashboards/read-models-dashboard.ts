import { type Queryable, quoteIdent } from '@spywatcher/db';
import { FINAL } from '@spywatcher/search/projections/analytics';
import { type DashboardSpec, READ_MODELS } from './grafana.ts';

/** SQL text built by `inline`: a fragment whose parameters are already written in. */
class Inlined {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

const write = (value: unknown): string => {
  if (value instanceof Inlined) return value.text;
  // postgres.js writes a list of fragments one after another, space-separated.
  if (Array.isArray(value)) return value.map(write).join(' ');
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new Error(`only numbers are written into a panel's SQL, not ${JSON.stringify(value)}`);
  }
  return String(value);
};

/**
 * Stands in for postgres.js's `sql` while the final SELECTs of the analytics endpoints are built,
 * writing their numeric parameters into the text: a Grafana panel sends its SQL as is, without bind
 * parameters. It supports what those SELECTs use: tagged fragments and `sql(identifier)`.
 */
function inlineTag(first: TemplateStringsArray | string, ...args: unknown[]): Inlined {
  if (typeof first === 'string') return new Inlined(quoteIdent(first));
  return new Inlined(first.reduce((text, s, i) => text + (i === 0 ? '' : write(args[i - 1])) + s, ''));
}
const inline = inlineTag as unknown as Queryable;
const text = (fragment: unknown) => write(fragment);

/** Grafana's guild variable as a quoted SQL string, and the dashboard's time range as whole UTC days. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, filled in by Grafana
export const GUILD_VARIABLE = '${guild:sqlstring}';
const GUILD = GUILD_VARIABLE;
const WINDOW = 'day between $__timeFrom()::date and $__timeTo()::date';
export const TOP = 20;

/** Grafana sends the window; the final SELECTs only read limit-like numbers from these. */
const window = { from: '', to: '', limit: TOP, minScore: 0 };

export const lurkersSql = `with t as (
  select user_id, sum(presences)::bigint as presences, count(*) filter (where presences > 0) as presence_days,
    sum(messages + typing + reactions)::bigint as active
  from rm_user_daily where guild_id = ${GUILD} and ${WINDOW}
  group by user_id
) ${text(FINAL.lurkers(inline, window))}`;

export const suspicionSql = `with t as (
  select user_id, sum(messages)::bigint as messages, sum(typing)::bigint as typing,
    sum(fast_reactions)::bigint as fast, sum(multi_client)::bigint as multi,
    sum(role_changes)::bigint as roles, sum(deleted_messages)::bigint as deleted
  from rm_user_daily where guild_id = ${GUILD} and ${WINDOW}
  group by user_id
) ${text(FINAL.suspicion(inline, window))}`;

const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const hour = (h: number) => String(h).padStart(2, '0');

/** The guild's week as 7 rows (Monday first) of 24 hourly totals (messages + typing + reactions). */
export const heatmapSql = `with t as (
  select extract(dow from day) as weekday, h - 1 as hour,
    sum(messages[h]) as messages, sum(typing[h]) as typing, sum(reactions[h]) as reactions
  from rm_heatmap_daily cross join generate_series(1, 24) h
  where scope = 'guild' and key = ${GUILD} and guild_id = ${GUILD} and ${WINDOW}
  group by 1, 2
), cells as (${text(FINAL.heatmap(inline, { ...window, limit: 168 }))})
select d.name as weekday,
  ${Array.from({ length: 24 }, (_, h) => `coalesce(max(c.total) filter (where c.hour = ${h}), 0) as "${hour(h)}"`).join(',\n  ')}
from (values ${WEEKDAYS.map((name, i) => `(${i}, ${(i + 1) % 7}, '${name}')`).join(', ')}) d(ord, dow, name)
left join cells c on c.weekday = d.dow
group by d.ord, d.name order by d.ord`;

export const dailyActivitySql = `select day::timestamp as time, sum(messages)::bigint as messages, sum(typing)::bigint as typing,
  sum(reactions)::bigint as reactions, sum(presences)::bigint as presences
from rm_user_daily where guild_id = ${GUILD} and ${WINDOW}
group by day order by day`;

export const GUILDS_SQL = "select distinct guild_id from rm_heatmap_daily where scope = 'guild' order by 1";

export const readModelsDashboard: DashboardSpec = {
  uid: 'spywatcher-read-models',
  title: 'SpyWatcher / Read models',
  description:
    "A guild's activity from the analytics read models, through PostgreSQL as the read-only role spywatcher_grafana. The window is whole UTC days; the numbers are those of GET /v1/analytics/{heatmap,lurkers,suspicion}.",
  time: { from: 'now-30d', to: 'now' },
  variables: [
    {
      type: 'query',
      name: 'guild',
      label: 'Guild',
      datasource: READ_MODELS,
      query: GUILDS_SQL,
      definition: GUILDS_SQL,
      refresh: 2,
      multi: false,
      includeAll: false,
      sort: 1,
    },
  ],
  panels: [
    {
      title: 'Activity by weekday and hour (UTC)',
      description:
        'Messages + typing + reactions per hour of the week over the window (GET /v1/analytics/heatmap)',
      type: 'table',
      colorCells: true,
      w: 24,
      h: 9,
      sql: heatmapSql,
    },
    {
      title: 'Top suspicion scores',
      description:
        'Score 0-100 from ghost typing, fast reactions, multiple clients, role churn and deletions (GET /v1/analytics/suspicion)',
      type: 'table',
      sql: suspicionSql,
      h: 10,
    },
    {
      title: 'Lurkers',
      description: 'Present but never writing, typing or reacting in the window (GET /v1/analytics/lurkers)',
      type: 'table',
      sql: lurkersSql,
      h: 10,
    },
    {
      title: 'Activity per day',
      w: 24,
      sql: dailyActivitySql,
    },
  ],
};
