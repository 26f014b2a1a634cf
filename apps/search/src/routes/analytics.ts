import type { Sql } from '@spywatcher/db';
import { errorResponses, httpErrors, type ServiceInstance, Type } from '@spywatcher/service';
import {
  type AnalyticsName,
  type AnalyticsParams,
  READ_MODEL_QUERIES,
  runAnalytics,
} from '../projections/analytics.ts';

/** Analytics are per-user behaviour (suspicion, activity hours): never public. */
export const ANALYTICS_SCOPE = 'analytics:read';

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** PostgreSQL's undefined_table and undefined_column. */
const MISSING_RELATION = new Set(['42P01', '42703']);

/**
 * A read model whose declaration gained a table or column is rebuilt at the next start, and the
 * old tables serve until the swap: a question that needs the new shape is a 503 until then.
 */
function rebuildingAsUnavailable(error: unknown): never {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && MISSING_RELATION.has(code)) {
    throw httpErrors.unavailable(
      'the read models of this question are being rebuilt to a new version; retry later (GET /v1/projections shows the rebuild)',
    );
  }
  throw error;
}
const MAX_WINDOW_DAYS = 366;

const Id = (description: string, example: string) =>
  Type.String({ minLength: 1, maxLength: 64, pattern: '^[0-9A-Za-z_-]+$', description, examples: [example] });

const common = {
  guildId: Type.Optional(Id('Only this guild (all guilds when absent)', '81384788765712384')),
  from: Type.Optional(
    Type.String({
      pattern: DATE.source,
      description: 'First UTC day of the window, inclusive (default: 27 days before `to`)',
      examples: ['2026-11-01'],
    }),
  ),
  to: Type.Optional(
    Type.String({
      pattern: DATE.source,
      description: 'Last UTC day of the window, inclusive (default: today, UTC)',
      examples: ['2026-11-28'],
    }),
  ),
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 500, default: 50, description: 'Most rows returned' }),
  ),
};

const num = (description: string) => Type.Number({ description });
const int = (description: string) => Type.Integer({ description });
const user = { userId: Type.String({ description: 'Discord user id' }) };

interface Endpoint {
  name: AnalyticsName;
  summary: string;
  explanation: string;
  query?: Record<string, ReturnType<typeof Type.Optional>>;
  item: ReturnType<typeof Type.Object>;
  /** Smallest window in days the question makes sense for. */
  minDays?: number;
  limitMax?: number;
}

const ENDPOINTS: Endpoint[] = [
  {
    name: 'ghosts',
    summary: 'Users who type a lot but rarely send messages',
    explanation:
      'typing = typing events, messages = messages sent in the window; ratio = typing / max(messages, 1), rounded half up to 3 decimals. Listed when typing >= minTyping and typing > messages. Order: the exact ratio, highest first (67/63 before 84/79, though both show 1.063), then user id ascending.',
    query: {
      minTyping: Type.Optional(
        Type.Integer({
          minimum: 1,
          maximum: 2_147_483_647,
          default: 10,
          description: 'Least typing events to be listed',
        }),
      ),
    },
    item: Type.Object({
      ...user,
      typing: int('Typing events'),
      messages: int('Messages sent'),
      ratio: num('typing / max(messages, 1), 3 decimals'),
    }),
  },
  {
    name: 'lurkers',
    summary: 'Users present but silent: presence events and no messages, typing or reactions',
    explanation:
      'presences = presence events in the window, presenceDays = distinct UTC days with one. Listed when the user sent no message, typed nothing and reacted to nothing in the window (in the guild, when one is given). Presences without a guild (legacy) count only when no guild is given. Order: presences, most first, then user id ascending.',
    item: Type.Object({
      ...user,
      presences: int('Presence events'),
      presenceDays: int('Distinct UTC days with a presence event'),
    }),
  },
  {
    name: 'heatmap',
    summary: 'Activity by weekday × hour (UTC) for a guild, a channel or a user',
    explanation:
      'Counts of messages, typing events and reactions per UTC weekday (0 = Sunday) and hour, for the user when userId is given, else the channel when channelId is given, else the guild (all guilds without guildId). Only non-empty cells are listed. Order: weekday, then hour.',
    query: {
      channelId: Type.Optional(Id('Heatmap of this channel', '81384788765712385')),
      userId: Type.Optional(
        Id('Heatmap of this user (takes precedence over channelId)', '80351110224678912'),
      ),
    },
    item: Type.Object({
      weekday: int('0 = Sunday … 6 = Saturday (UTC)'),
      hour: int('Hour of day, 0–23 (UTC)'),
      messages: int('Messages'),
      typing: int('Typing events'),
      reactions: int('Reactions'),
      total: int('messages + typing + reactions'),
    }),
    limitMax: 168,
  },
  {
    name: 'channel-diversity',
    summary: 'How many distinct channels each user is active in',
    explanation:
      'channels = distinct channels where the user sent a message, typed or reacted in the window; events = those messages, typing events and reactions. Order: channels, most first, then events, most first, then user id ascending.',
    item: Type.Object({
      ...user,
      channels: int('Distinct channels with activity'),
      events: int('Messages + typing events + reactions'),
    }),
  },
  {
    name: 'multi-client',
    summary: 'Users seen on two or more clients at once, with when',
    explanation:
      'events = presence events showing two or more distinct clients (desktop, web, mobile) at the same time; combinations lists each client set (ordered by name) with its count and its first and last time in the window (UTC, milliseconds). Order: events, most first, then user id ascending.',
    item: Type.Object({
      ...user,
      events: int('Presence events with two or more clients at once'),
      firstAt: Type.String({ description: 'First such event in the window (UTC)' }),
      lastAt: Type.String({ description: 'Last such event in the window (UTC)' }),
      combinations: Type.Array(
        Type.Object({
          clients: Type.String({
            description: 'Client set, comma-separated, sorted',
            examples: ['desktop,mobile'],
          }),
          events: int('Events with exactly this set'),
          firstAt: Type.String(),
          lastAt: Type.String(),
        }),
      ),
    }),
  },
  {
    name: 'reaction-stats',
    summary: 'Per user: average and median reaction delta, and fast reactions (< 3 s)',
    explanation:
      'Over the reactions the user made in the window: avgMs = mean delta in ms from the exact sum, rounded half away from zero to 1 decimal; medianMs = lower median (the smallest delta with at least half of the reactions at or below it); fastReactions = reactions with delta < 3000 ms. Order: fastReactions, most first, then reactions, most first, then user id ascending.',
    query: {
      minReactions: Type.Optional(
        Type.Integer({
          minimum: 1,
          maximum: 2_147_483_647,
          default: 1,
          description: 'Least reactions to be listed',
        }),
      ),
    },
    item: Type.Object({
      ...user,
      reactions: int('Reactions'),
      avgMs: num('Mean reaction delta in ms, 1 decimal'),
      medianMs: int('Lower median reaction delta in ms'),
      fastReactions: int('Reactions faster than 3 s'),
    }),
  },
  {
    name: 'role-drift',
    summary: 'Role changes per user over the window',
    explanation:
      'changes = role-change events, rolesAdded / rolesRemoved = roles added / removed across them, changeDays = distinct UTC days with a change. Order: changes, most first, then user id ascending.',
    item: Type.Object({
      ...user,
      changes: int('Role-change events'),
      rolesAdded: int('Roles added'),
      rolesRemoved: int('Roles removed'),
      changeDays: int('Distinct UTC days with a change'),
    }),
  },
  {
    name: 'behavior-shifts',
    summary: 'Users whose activity in the last 7 days differs from their weekly average before',
    explanation:
      'activity = messages + typing events + reactions. thisWeek = activity in the last 7 days of the window; previousWeeklyAverage = activity in the rest of the window / its length in weeks, rounded half up to 3 decimals; change = (thisWeek − average) / max(average, 1), computed from the exact average (not the rounded one) and rounded half away from zero to 3 decimals; direction = up when the exact change is >= 0 (no change counts as up), down when it is below 0 (also when it rounds to 0). Listed when the exact |change| >= threshold. Order: the exact |change|, largest first, then user id ascending. Needs a window of at least 14 days.',
    query: {
      threshold: Type.Optional(
        Type.Number({
          minimum: 0,
          maximum: 1_000_000,
          default: 1,
          description: 'Least |change| listed (1 = ±100%)',
        }),
      ),
    },
    item: Type.Object({
      ...user,
      thisWeek: int('Activity in the last 7 days'),
      previousWeeklyAverage: num('Average weekly activity before that, 3 decimals'),
      change: num('Relative change, 3 decimals'),
      direction: Type.Union([Type.Literal('up'), Type.Literal('down')], {
        description: 'up when the exact change is >= 0 (0 included), down below 0',
      }),
    }),
    minDays: 14,
  },
  {
    name: 'client-drift',
    summary: 'Users whose client mix changed',
    explanation:
      'Client mix = share of each client (desktop, web, mobile) among the clients shown by the user’s presence events. thisWeek = mix in the last 7 days of the window, previousWeeks = mix before; distance = half the sum of absolute share differences (0 = same mix, 1 = disjoint), from the exact shares. Shares and distance are rounded half up to 3 decimals, each once (so rounded shares may not add up to exactly 1). Listed when the exact distance >= threshold and both periods have presences. Order: the exact distance, largest first, then user id ascending.',
    query: {
      threshold: Type.Optional(
        Type.Number({ minimum: 0, maximum: 1, default: 0.5, description: 'Least distance listed' }),
      ),
    },
    item: Type.Object({
      ...user,
      distance: num('Total variation distance between the two mixes, 3 decimals'),
      thisWeek: Type.Record(Type.String(), Type.Number(), {
        description: 'Share per client, last 7 days, 3 decimals',
      }),
      previousWeeks: Type.Record(Type.String(), Type.Number(), {
        description: 'Share per client, before, 3 decimals',
      }),
    }),
    minDays: 14,
  },
  {
    name: 'suspicion',
    summary: 'A composite suspicion score per user, with each component’s contribution',
    explanation:
      'score = sum of points (0–100): ghost = 30 × min(1, typing / (10 × (messages + 1))); fastReactions = 25 × min(1, fast reactions / 10); multiClient = 20 × min(1, multi-client presences / 20); roleChurn = 15 × min(1, role changes / 5); deletions = 10 × min(1, deleted messages / (messages + 1)). score is the exact sum of the exact points, rounded half up to 2 decimals; each component’s points are rounded to 2 decimals on their own, so the shown points may add up to a hundredth or two off the score. Listed when the exact score >= minScore. Order: the exact score, highest first, then user id ascending.',
    query: {
      minScore: Type.Optional(
        Type.Number({ minimum: 0, maximum: 100, default: 0, description: 'Least score listed' }),
      ),
    },
    item: Type.Object({
      ...user,
      score: num('Sum of the components’ exact points, 0–100, 2 decimals'),
      components: Type.Object({
        ghost: Type.Object({ points: num('of 30'), typing: int(''), messages: int('') }),
        fastReactions: Type.Object({ points: num('of 25'), count: int('') }),
        multiClient: Type.Object({ points: num('of 20'), count: int('') }),
        roleChurn: Type.Object({ points: num('of 15'), count: int('') }),
        deletions: Type.Object({ points: num('of 10'), count: int(''), messages: int('') }),
      }),
    }),
  },
];

const dayMs = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** A calendar day (years 0001-9999, no 30 February) as epoch ms, or a 400 naming the parameter. */
function dayOf(text: string, parameter: string): number {
  const ms = Date.parse(`${text}T00:00:00Z`);
  if (Number.isNaN(ms) || isoDay(ms) !== text || text.startsWith('0000')) {
    throw httpErrors.badRequest(`${parameter}: "${text}" is not a valid date (YYYY-MM-DD)`);
  }
  return ms;
}

/** Fills in the default window and checks it; the error names the parameter. */
export function resolveWindow(
  query: { from?: string; to?: string },
  minDays = 1,
  today = Date.now(),
): { from: string; to: string; days: number } {
  const to = query.to ?? isoDay(today);
  const toMs = dayOf(to, 'to');
  const from = query.from ?? isoDay(toMs - (Math.max(28, minDays) - 1) * dayMs);
  const fromMs = dayOf(from, 'from');
  const days = Math.round((toMs - fromMs) / dayMs) + 1;
  if (days < 1) throw httpErrors.badRequest(`from (${from}) must not be after to (${to})`);
  if (days > MAX_WINDOW_DAYS)
    throw httpErrors.badRequest(`the window may span at most ${MAX_WINDOW_DAYS} days`);
  if (days < minDays) {
    throw httpErrors.badRequest(
      `this question compares the last 7 days with the weeks before: the window needs at least ${minDays} days (it has ${days})`,
    );
  }
  return { from, to, days };
}

export async function analyticsRoutes(
  app: ServiceInstance,
  deps: { sql: Sql; analyticsSql?: Sql },
): Promise<void> {
  for (const e of ENDPOINTS) {
    const limitMax = e.limitMax ?? 500;
    const querySchema = Type.Object(
      {
        ...common,
        limit: Type.Optional(
          Type.Integer({
            minimum: 1,
            maximum: limitMax,
            default: limitMax === 168 ? 168 : 50,
            description:
              'Most rows returned; the order (see the description) is total, so a limit always cuts the same list',
          }),
        ),
        ...(e.query ?? {}),
      },
      { additionalProperties: false },
    );
    app.get(
      `/v1/analytics/${e.name}`,
      {
        config: { scope: ANALYTICS_SCOPE },
        schema: {
          tags: ['analytics'],
          summary: e.summary,
          description: `${e.explanation}\n\nAnswered from the read models kept by the projections (see GET /v1/projections for how current they are). The window is whole UTC days, from and to inclusive. Needs the \`${ANALYTICS_SCOPE}\` scope.`,
          querystring: querySchema,
          response: {
            200: Type.Object({
              name: Type.String({ examples: [e.name] }),
              window: Type.Object({
                from: Type.String(),
                to: Type.String(),
                days: Type.Integer(),
                timezone: Type.Literal('UTC'),
              }),
              guildId: Type.Union([Type.String(), Type.Null()]),
              explanation: Type.String({ description: 'What the numbers mean' }),
              items: Type.Array(e.item),
            }),
            ...errorResponses(400, 503),
          },
        },
      },
      async (request) => {
        const q = request.query as Record<string, unknown> & { from?: string; to?: string };
        const window = resolveWindow(q, e.minDays);
        const params: AnalyticsParams = {
          ...(q as Partial<AnalyticsParams>),
          from: window.from,
          to: window.to,
          limit: (q.limit as number | undefined) ?? (limitMax === 168 ? 168 : 50),
        };
        const items = await runAnalytics(deps.analyticsSql ?? deps.sql, READ_MODEL_QUERIES, e.name, params, {
          sessionReady: deps.analyticsSql !== undefined,
        }).catch(rebuildingAsUnavailable);
        return {
          name: e.name,
          window: { ...window, timezone: 'UTC' as const },
          guildId: params.guildId ?? null,
          explanation: e.explanation,
          items,
        };
      },
    );
  }
}

export const ANALYTICS_ENDPOINTS = ENDPOINTS.map((e) => e.name);
