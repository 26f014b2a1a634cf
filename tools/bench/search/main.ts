/**
 * Search benchmark: loads a generated corpus (2,000,000 messages; --quick: 100,000) with COPY
 * into a fresh migrated database, runs a fixed set of query classes through the service's own
 * search code (parseQuery + searchMessages, the route's functions, on a pool configured like the
 * service's search pool), and measures two baselines on the same data: SpyWatcher's
 * `content ILIKE '%word%' ORDER BY time DESC LIMIT 25` and naive full-text search
 * (`tsv @@ q ORDER BY ts_rank DESC LIMIT 25` plus `count(*)`). The last line is one JSON object.
 *
 *   npm run bench:search [-- --quick] [--messages N] [--runs N] [--baseline-runs N] [--keep] [--reuse DB]
 */
import { copyRows, createSql, ensurePartitions, migrate, type Sql, withDatabase } from '@spywatcher/db';
import { MIGRATIONS_DIR } from '@spywatcher/migrator/migrations';
import { MESSAGE_COLUMNS, messageRow } from '@spywatcher/search/fixtures/search-corpus';
import { parseQuery, searchMessages } from '@spywatcher/search/search';
import { createEmptyDatabase } from '@spywatcher/testing';
import { mulberry32 } from '@spywatcher/testing/random';
import {
  type CorpusShape,
  channelId,
  generateMessages,
  guildId,
  MISSING_WORD,
  RARE_WORD,
  userId,
} from './generate.ts';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const MESSAGES = Number(flag('--messages') ?? (quick ? 100_000 : 2_000_000));
const RUNS = Number(flag('--runs') ?? (quick ? 20 : 40));
const BASELINE_RUNS = Number(flag('--baseline-runs') ?? (quick ? 3 : 5));
const ADMIN_URL = withDatabase(
  process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  'postgres',
);

const log = (msg: string) => process.stderr.write(`[bench:search] ${msg}\n`);

const shape: CorpusShape = {
  messages: MESSAGES,
  start: new Date('2025-11-01T00:00:00Z'),
  end: new Date('2026-10-31T23:00:00Z'),
  users: 20_000,
  channels: 300,
  guilds: 30,
  seed: 20_261_126,
};

const FROM_USER = userId(50);
const IN_CHANNEL = channelId(10);
const DURING = '2026-06';

interface QueryClass {
  name: string;
  q: string;
  sort?: 'newest' | 'relevance';
  /** page number to measure (1 = first); earlier pages are walked once beforehand for the cursor */
  page?: number;
  ilike: (sql: Sql) => Promise<unknown>;
  naive: (sql: Sql) => Promise<unknown>;
}

const cols = 'id, occurred_at, user_id, channel_id, guild_id, content';

/** Naive FTS: rank every match and count every match. */
function naive(sql: Sql, tsquery: string, extra = '', params: unknown[] = [], offset = 0) {
  return Promise.all([
    sql.unsafe(
      `select ${cols}, ts_rank(tsv, q) as r from message_events, ${tsquery} as q
       where tsv @@ q ${extra} order by r desc limit 25 offset ${offset}`,
      params as never[],
    ),
    sql.unsafe(
      `select count(*) from message_events, ${tsquery} as q where tsv @@ q ${extra}`,
      params as never[],
    ),
  ]);
}

/** What SpyWatcher does today. */
function ilike(sql: Sql, where: string, params: unknown[], offset = 0) {
  return sql.unsafe(
    `select ${cols} from message_events where ${where} order by occurred_at desc limit 25 offset ${offset}`,
    params as never[],
  );
}

const WEB = `websearch_to_tsquery('public.sw_chat', $1)`;
const duringStart = `${DURING}-01T00:00:00Z`;
const duringEnd = '2026-07-01T00:00:00Z';

const CLASSES: QueryClass[] = [
  {
    name: 'common_word',
    q: 'the',
    ilike: (s) => ilike(s, 'content ilike $1', ['%the%']),
    naive: (s) => naive(s, WEB, '', ['the']),
  },
  {
    name: 'rare_word',
    q: RARE_WORD,
    ilike: (s) => ilike(s, 'content ilike $1', [`%${RARE_WORD}%`]),
    naive: (s) => naive(s, WEB, '', [RARE_WORD]),
  },
  {
    name: 'no_match',
    q: MISSING_WORD,
    ilike: (s) => ilike(s, 'content ilike $1', [`%${MISSING_WORD}%`]),
    naive: (s) => naive(s, WEB, '', [MISSING_WORD]),
  },
  {
    name: 'phrase',
    q: '"see you tomorrow"',
    ilike: (s) => ilike(s, 'content ilike $1', ['%see you tomorrow%']),
    naive: (s) => naive(s, WEB, '', ['"see you tomorrow"']),
  },
  {
    name: 'prefix',
    q: 'deplo*',
    ilike: (s) => ilike(s, 'content ilike $1', ['%deplo%']),
    naive: (s) => naive(s, `to_tsquery('public.sw_chat', $1)`, '', ['deplo:*']),
  },
  {
    name: 'from_word',
    q: `from:${FROM_USER} lol`,
    ilike: (s) => ilike(s, 'user_id = $1 and content ilike $2', [FROM_USER, '%lol%']),
    naive: (s) => naive(s, WEB, 'and user_id = $2', ['lol', FROM_USER]),
  },
  {
    name: 'in_during',
    q: `in:${IN_CHANNEL} during:${DURING}`,
    ilike: (s) =>
      ilike(s, 'channel_id = $1 and occurred_at >= $2 and occurred_at < $3', [
        IN_CHANNEL,
        duringStart,
        duringEnd,
      ]),
    naive: (s) =>
      Promise.all([
        ilike(s, 'channel_id = $1 and occurred_at >= $2 and occurred_at < $3', [
          IN_CHANNEL,
          duringStart,
          duringEnd,
        ]),
        s.unsafe(
          'select count(*) from message_events where channel_id = $1 and occurred_at >= $2 and occurred_at < $3',
          [IN_CHANNEL, duringStart, duringEnd],
        ),
      ]),
  },
  {
    name: 'or',
    q: 'pepega OR kekw',
    ilike: (s) => ilike(s, '(content ilike $1 or content ilike $2)', ['%pepega%', '%kekw%']),
    naive: (s) => naive(s, WEB, '', ['pepega or kekw']),
  },
  {
    name: 'exclusion',
    q: 'game -the',
    ilike: (s) => ilike(s, 'content ilike $1 and content not ilike $2', ['%game%', '%the%']),
    naive: (s) => naive(s, WEB, '', ['game -the']),
  },
  {
    name: 'filters_only',
    q: `has:link guild:${guildId(3)}`,
    ilike: (s) => ilike(s, 'content ilike $1 and guild_id = $2', ['%http%', guildId(3)]),
    naive: (s) =>
      Promise.all([
        ilike(s, 'content ilike $1 and guild_id = $2', ['%http%', guildId(3)]),
        s.unsafe('select count(*) from message_events where content ilike $1 and guild_id = $2', [
          '%http%',
          guildId(3),
        ]),
      ]),
  },
  {
    name: 'relevance',
    q: 'game night',
    sort: 'relevance',
    ilike: (s) => ilike(s, 'content ilike $1 and content ilike $2', ['%game%', '%night%']),
    naive: (s) => naive(s, WEB, '', ['game night']),
  },
  {
    name: 'page_50',
    q: 'the',
    page: 50,
    ilike: (s) => ilike(s, 'content ilike $1', ['%the%'], 49 * 25),
    naive: (s) => naive(s, WEB, '', ['the'], 49 * 25),
  },
];

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[i]! * 100) / 100;
}

async function time(runs: number, fn: () => Promise<unknown>): Promise<number[]> {
  await fn(); // warm-up, not counted
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

async function load(url: string): Promise<number> {
  const sql = createSql({ url, applicationName: 'bench-search-load', max: 2, statementTimeoutMs: 0 });
  try {
    await migrate({ sql, dir: MIGRATIONS_DIR });
    const months: Date[] = [];
    for (
      let t = new Date(shape.start);
      t <= shape.end;
      t = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth() + 1, 1))
    ) {
      months.push(t);
    }
    await ensurePartitions(sql, 'message', months);
    const started = performance.now();
    const messages = generateMessages(shape);
    const chunk = 200_000;
    let loaded = 0;
    const deleted: { messageId: string; at: Date; userId: string; channelId: string; guildId: string }[] = [];
    const rand = mulberry32(99);
    while (loaded < MESSAGES) {
      const n = Math.min(chunk, MESSAGES - loaded);
      await copyRows(
        sql,
        'message_events',
        MESSAGE_COLUMNS,
        (function* () {
          for (let i = 0; i < n; i++) {
            const m = messages.next().value!;
            if (rand() < 0.02) {
              deleted.push({
                messageId: m.messageId,
                at: new Date(m.occurredAt.getTime() + 600_000),
                userId: m.userId,
                channelId: m.channelId,
                guildId: m.guildId,
              });
            }
            yield messageRow(m);
          }
        })(),
        5000,
      );
      loaded += n;
      log(`loaded ${loaded}/${MESSAGES} messages (${((performance.now() - started) / 1000).toFixed(0)} s)`);
    }
    await ensurePartitions(
      sql,
      'deleted_message',
      deleted.map((d) => d.at),
    );
    await copyRows(
      sql,
      'deleted_message_events',
      ['id', 'occurred_at', 'message_id', 'user_id', 'username', 'channel_id', 'channel_name', 'guild_id'],
      deleted.map((d, i) => [
        `00000000-0000-7000-8000-${i.toString(16).padStart(12, '0')}`,
        d.at,
        d.messageId,
        d.userId,
        'someone',
        d.channelId,
        'channel',
        d.guildId,
      ]),
    );
    log(`${deleted.length} deleted_message events; vacuum analyze`);
    await sql`vacuum analyze`;
    return (performance.now() - started) / 1000;
  } finally {
    await sql.end();
  }
}

async function main(): Promise<void> {
  // --reuse <database> measures again on a corpus kept by an earlier --keep run
  const reuse = flag('--reuse');
  const db = reuse
    ? { name: reuse, url: withDatabase(ADMIN_URL, reuse), drop: async () => {} }
    : await createEmptyDatabase(ADMIN_URL, 'sw_bench_search');
  log(
    `database ${db.name}: ${MESSAGES} messages, ${RUNS} runs per class, ${BASELINE_RUNS} per baseline class`,
  );
  try {
    const loadS = reuse ? 0 : await load(db.url);
    // configured like the service's search pool (createSearchSql): no named prepared statements
    const sql = createSql({
      url: db.url,
      applicationName: 'bench-search',
      max: 4,
      statementTimeoutMs: 0,
      pgbouncer: true,
    });
    const classes: Record<
      string,
      { p50_ms: number; p95_ms: number; p99_ms: number; results: number; total: string | null }
    > = {};
    const ilikes: Record<string, { p50_ms: number; p95_ms: number }> = {};
    const naives: Record<string, { p50_ms: number; p95_ms: number }> = {};
    try {
      for (const c of CLASSES) {
        const sort = c.sort ?? 'newest';
        let cursor: string | undefined;
        for (let page = 1; page < (c.page ?? 1); page++) {
          const r = await searchMessages(sql, parseQuery(c.q), { sort, limit: 25, cursor }, c.q);
          cursor = r.nextCursor ?? undefined;
        }
        let last: Awaited<ReturnType<typeof searchMessages>> | undefined;
        const samples = await time(RUNS, async () => {
          last = await searchMessages(sql, parseQuery(c.q), { sort, limit: 25, cursor }, c.q);
        });
        classes[c.name] = {
          p50_ms: percentile(samples, 50),
          p95_ms: percentile(samples, 95),
          p99_ms: percentile(samples, 99),
          results: last!.results.length,
          total: last!.total?.display ?? null,
        };
        log(`${c.name.padEnd(13)} ${JSON.stringify(classes[c.name])}`);
      }
      for (const c of CLASSES) {
        const s1 = await time(BASELINE_RUNS, () => c.ilike(sql));
        ilikes[c.name] = { p50_ms: percentile(s1, 50), p95_ms: percentile(s1, 95) };
        const s2 = await time(BASELINE_RUNS, () => c.naive(sql));
        naives[c.name] = { p50_ms: percentile(s2, 50), p95_ms: percentile(s2, 95) };
        log(
          `${c.name.padEnd(13)} ilike ${JSON.stringify(ilikes[c.name])} naive_fts ${JSON.stringify(naives[c.name])}`,
        );
      }
    } finally {
      await sql.end();
    }
    const slowest = Object.entries(classes).sort((a, b) => b[1].p95_ms - a[1].p95_ms)[0]!;
    const slowestIlike = Object.entries(ilikes).sort((a, b) => b[1].p95_ms - a[1].p95_ms)[0]!;
    const result = {
      benchmark: 'search',
      quick,
      messages: MESSAGES,
      load_s: Math.round(loadS),
      runs: RUNS,
      baseline_runs: BASELINE_RUNS,
      classes: Object.fromEntries(
        Object.entries(classes).map(([k, v]) => [
          k,
          { p50_ms: v.p50_ms, p95_ms: v.p95_ms, p99_ms: v.p99_ms },
        ]),
      ),
      totals: Object.fromEntries(Object.entries(classes).map(([k, v]) => [k, v.total])),
      ilike: ilikes,
      naive_fts: naives,
      slowest_class: slowest[0],
      slowest_ilike_class: slowestIlike[0],
      speedup_vs_ilike: Math.round((slowestIlike[1].p95_ms / slowest[1].p95_ms) * 10) / 10,
      targets: {
        p95_le_50ms: Object.values(classes).every((v) => v.p95_ms <= 50),
        p99_le_150ms: Object.values(classes).every((v) => v.p99_ms <= 150),
        speedup_ge_10: slowestIlike[1].p95_ms / slowest[1].p95_ms >= 10,
      },
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    if (!args.includes('--keep')) await db.drop();
    else log(`kept database ${db.name}`);
  }
}

await main();
