// Projections benchmark: rebuild throughput vs a raw sequential scan, projection lag under
// sustained ingest, and analytics endpoint latency vs the same questions asked of the raw tables.
//
//   npm run bench:projections              # 5,000,000 events
//   npm run bench:projections -- --quick   # 100,000 events, under a minute
//   npm run bench:projections -- --contended [--quick]
//     # the same, while message searches, analytics questions and a second writer
//     # (--second-rate events/s, default 1,000) run alongside every measurement
//
// Runs in a fresh database on DATABASE_URL's server (dropped at the end unless --keep). The last
// line printed is one JSON object.
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import {
  copyRows,
  createSql,
  ensurePartitions,
  migrate,
  PartitionCache,
  type Sql,
  withDatabase,
} from '@spywatcher/db';
import { createEvent, type EventType, eventTable, type SpywatcherEvent, uuidv7 } from '@spywatcher/events';
import { publishStored } from '@spywatcher/ingest/notify';
import { storeEvents } from '@spywatcher/ingest/store';
import { MIGRATIONS_DIR } from '@spywatcher/migrator/migrations';
import { projectionStatus, rebuildProjections, startProjectionRunner } from '@spywatcher/projections';
import { buildApp } from '@spywatcher/search/app';
import { RAW_QUERIES } from '@spywatcher/search/fixtures/analytics-raw';
import { COLUMNS, generateEvents, type SeedEvent } from '@spywatcher/search/fixtures/analytics-seed';
import {
  type AnalyticsName,
  type AnalyticsParams,
  createAnalyticsSql,
  runAnalytics,
} from '@spywatcher/search/projections/analytics';
import { PROJECTIONS } from '@spywatcher/search/projections/definitions';
import { createAuth } from '@spywatcher/service';
import { Registry } from 'prom-client';
import { type Contention, type ContentionStats, startContention } from './contention.ts';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    events: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'lag-seconds': { type: 'string' },
    rate: { type: 'string' },
    contended: { type: 'boolean', default: false },
    'second-rate': { type: 'string' },
  },
});
const quick = args.quick;
const EVENTS = Number(args.events ?? (quick ? 100_000 : 5_000_000));
const DAYS = 56;
const START = '2026-09-01';
// Active communities: a bot watches a handful of guilds; users produce ~1,000 events each over 8 weeks.
const GUILDS = quick ? 4 : 10;
const USERS = quick ? 200 : 5_000;
const RATE = Number(args.rate ?? 5000);
const CONTENDED = args.contended;
const SECOND_RATE = Number(args['second-rate'] ?? 1000);
const BENCH_TOKEN = 'bench-search-reader';
const LAG_SECONDS = Number(args['lag-seconds'] ?? (quick ? 10 : 60));
const ENDPOINT_RUNS = quick ? 20 : 50;
// The raw side asks each guild once, the endpoints each guild five times: both p95s are over the
// same questions. (With five raw runs over guilds 0-4 against endpoints over all ten, the guilds
// where a question is heaviest - the seed gives each archetype its own guild - were asked of the
// read models only.)
const RAW_RUNS = GUILDS;
const WINDOW = { from: '2026-09-29', to: '2026-10-26' }; // the last 28 days of the data

const log = (line: string) => process.stderr.write(`${line}\n`);
const baseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const adminUrl = withDatabase(baseUrl, 'postgres');
const dbName = `sw_bench_proj_${Date.now().toString(36)}`;
const url = withDatabase(baseUrl, dbName);

/** Nearest-rank quantile (p50 is the lower median). */
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(s.length * q) - 1))] ?? 0;
};
const p95 = (xs: number[]) => quantile(xs, 0.95);
const p50 = (xs: number[]) => quantile(xs, 0.5);
const r3 = (n: number) => Math.round(n * 1000) / 1000;

async function admin(statement: string) {
  const a = createSql({ url: adminUrl, applicationName: 'bench-projections', max: 1 });
  try {
    await a.unsafe(statement);
  } finally {
    await a.end();
  }
}

/** Loads the data set with COPY straight into the event tables, 50,000 events at a time. */
async function load(sql: Sql): Promise<number> {
  const cache = new PartitionCache();
  const start = Date.parse(`${START}T00:00:00Z`);
  for (let d = 0; d <= DAYS; d += 7) {
    const at = new Date(start + d * 86_400_000);
    for (const type of Object.keys(COLUMNS) as EventType[]) await ensurePartitions(sql, type, [at], cache);
  }
  let buffer = new Map<EventType, SeedEvent['row'][]>();
  let n = 0;
  let total = 0;
  const flush = async () => {
    for (const [type, rows] of buffer) {
      const chunk = rows;
      await ensurePartitions(
        sql,
        type,
        chunk.map((r) => r[1] as Date),
        cache,
      );
      await copyRows(sql, eventTable(type), COLUMNS[type], chunk);
    }
    buffer = new Map();
    n = 0;
  };
  for (const e of generateEvents({
    events: EVENTS,
    start: START,
    days: DAYS,
    guilds: GUILDS,
    users: USERS,
    channelsPerGuild: 12,
    seed: 7,
  })) {
    const list = buffer.get(e.type) ?? [];
    list.push(e.row);
    buffer.set(e.type, list);
    total++;
    if (++n >= 50_000) {
      await flush();
      if (total % 500_000 === 0) log(`  loaded ${total}`);
    }
  }
  if (n > 0) await flush();
  return total;
}

function toEvent(e: SeedEvent): SpywatcherEvent {
  const data: Record<string, unknown> = {};
  COLUMNS[e.type].forEach((column, i) => {
    if (i >= 2 && e.row[i] !== null) data[column] = e.row[i];
  });
  return createEvent(e.type, data as never, { id: uuidv7(), occurredAt: new Date() });
}

async function waitUntilReadable(sql: Sql, tables: string[]) {
  const started = performance.now();
  for (;;) {
    let held = false;
    for (const table of tables) {
      const [row] = await sql.unsafe<{ held: boolean }[]>(
        `select exists (select 1 from ${table} where tx >= pg_snapshot_xmin(pg_current_snapshot())) as held`,
      );
      held ||= row!.held;
    }
    if (!held) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const waited = (performance.now() - started) / 1000;
  if (waited > 0.5) log(`  waited ${waited.toFixed(1)} s for older transactions elsewhere on the server`);
}

const SEARCH_QUERIES = [
  'hello',
  'raid tonight',
  '"patch notes"',
  'gg OR lol',
  'anyone -ok',
  'nice from:user12',
  'tonight has:link',
];

/**
 * The --contended load against the search service under test: its searches (newest first and
 * by relevance) and every analytics question, and a second writer through ingest's store path.
 */
function contentionFor(
  app: Awaited<ReturnType<typeof buildApp>>,
  nats: Awaited<ReturnType<typeof connect>>,
  names: { prefix: string; stream: string },
) {
  const searchUrls = SEARCH_QUERIES.flatMap((q) =>
    ['newest', 'relevance'].map((sort) => `/v1/search/messages?${new URLSearchParams({ q, sort })}`),
  );
  const analyticsUrls = Array.from({ length: GUILDS }, (_, g) =>
    ANALYTICS_NAMES.map(
      (name) =>
        `/v1/analytics/${name}?${new URLSearchParams({ ...WINDOW, guildId: `1000000000000000${g}` })}`,
    ),
  ).flat();
  return (): Contention => {
    const writerSql = createSql({ url, applicationName: 'bench-projections-second-writer', max: 2 });
    const cache = new PartitionCache();
    const source = generateEvents({
      events: Number.MAX_SAFE_INTEGER,
      start: START,
      days: DAYS,
      guilds: GUILDS,
      users: USERS,
      seed: 23,
    });
    const load = startContention({
      request: async (target) =>
        (await app.inject({ url: target, headers: { authorization: `Bearer ${BENCH_TOKEN}` } })).statusCode,
      searchUrls,
      analyticsUrls,
      writeRate: SECOND_RATE,
      write: async (count) => {
        const batch = Array.from({ length: count }, () => toEvent(source.next().value as SeedEvent));
        const outcome = await storeEvents(writerSql, cache, batch);
        publishStored(nats, names, outcome.stored);
      },
    });
    return {
      stop: async () => {
        try {
          return await load.stop();
        } finally {
          await writerSql.end();
        }
      },
    };
  };
}

const ANALYTICS_NAMES: AnalyticsName[] = [
  'ghosts',
  'lurkers',
  'heatmap',
  'channel-diversity',
  'multi-client',
  'reaction-stats',
  'role-drift',
  'behavior-shifts',
  'client-drift',
  'suspicion',
];

/** Per phase: what ran alongside, per second. */
function contentionSummary(phases: Record<string, ContentionStats | undefined>) {
  return Object.fromEntries(
    Object.entries(phases).map(([phase, s]) => [
      phase,
      s && {
        seconds: r3(s.seconds),
        searches_per_s: Math.round(s.searches / s.seconds),
        analytics_per_s: Math.round(s.analytics / s.seconds),
        second_writer_per_s: Math.round(s.written / s.seconds),
      },
    ]),
  );
}

async function main() {
  log(`projections benchmark: ${EVENTS} events${quick ? ' (quick)' : ''}, database ${dbName}`);
  await admin(`create database ${dbName}`);
  const sql = createSql({ url, applicationName: 'bench-projections', max: 8, statementTimeoutMs: 0 });
  const nats = await connect({ servers: natsUrl.split(',') });
  const names = { prefix: `swbench${Date.now().toString(36)}`, stream: 'UNUSED' };
  try {
    await migrate({ sql, dir: MIGRATIONS_DIR });
    // As search's first start does: read models get their declared shape (a rebuild of an empty
    // log), so the contended mode's analytics questions work before the timed rebuild.
    await rebuildProjections(sql, PROJECTIONS, { batchSize: 20_000, concurrency: 2, atOnce: 2 });
    let t = performance.now();
    const events = await load(sql);
    const loadSeconds = (performance.now() - t) / 1000;
    log(`loaded ${events} events in ${loadSeconds.toFixed(1)} s; vacuum analyze`);
    await sql`vacuum analyze`;

    // As main.ts wires it: analytics reads through their own pool with its session settings.
    const app = await buildApp({
      sql,
      analyticsSql: createAnalyticsSql({ DATABASE_URL: url, DATABASE_STATEMENT_TIMEOUT_MS: 0 }),
      nats,
      auth: createAuth([{ name: 'bench', token: BENCH_TOKEN, scopes: ['search:read', 'analytics:read'] }]),
      metrics: new Registry(),
      logger: false,
    });
    const guildOf = (i: number) => `1000000000000000${i % GUILDS}`;
    // With --contended, every measurement below runs while this load does (one phase each).
    const contend = CONTENDED ? contentionFor(app, nats, names) : () => undefined;
    const contention: Record<string, ContentionStats | undefined> = {};
    let contended: Contention | undefined = contend();

    // Baselines: one sequential pass over every table any projection reads, (a) streaming every
    // row to the client as a projector reading the log must, and (b) counting in the server.
    const tables = [...new Set(PROJECTIONS.flatMap((p) => p.types.map((type) => eventTable(type))))];
    t = performance.now();
    let scanned = 0;
    for (const table of tables) {
      await sql.unsafe(`select * from ${table}`).cursor(10_000, (rows) => {
        scanned += rows.length;
      });
    }
    const scanSeconds = (performance.now() - t) / 1000;
    const scanPerS = scanned / scanSeconds;
    log(
      `raw sequential scan (rows to client): ${scanned} rows in ${scanSeconds.toFixed(2)} s (${Math.round(scanPerS)}/s)`,
    );
    t = performance.now();
    await sql.begin(async (tx) => {
      await tx`set local enable_indexscan = off`;
      await tx`set local enable_indexonlyscan = off`;
      await tx`set local enable_bitmapscan = off`;
      for (const table of tables) await tx.unsafe(`select count(*) from ${table}`);
    });
    const countPerS = scanned / ((performance.now() - t) / 1000);
    log(`raw sequential scan (count(*) in the server): ${Math.round(countPerS)}/s`);
    contention.scan = await contended?.stop();

    // xmin is cluster-wide: wait until no older transaction (of any database on this server)
    // holds our rows back, or the rebuild would measure a partial log.
    await waitUntilReadable(sql, tables);
    // Rebuild every projection from the start of the log.
    // As `nx run search:rebuild -- --all` does it: two projections at a time, each with two
    // bulk lanes.
    const perProjection: Record<string, number> = {};
    const tailEvents: Record<string, number> = {};
    contended = contend();
    t = performance.now();
    const reports = await rebuildProjections(sql, PROJECTIONS, {
      batchSize: 20_000,
      concurrency: 2,
      atOnce: 2,
    });
    for (const report of reports) {
      perProjection[report.projection] = report.seconds;
      tailEvents[report.projection] = report.tailEvents;
      log(`rebuild ${report.projection}: ${report.seconds} s (bulk ${report.bulkSeconds} s)`);
    }
    const rebuildSeconds = (performance.now() - t) / 1000;
    if (contended) {
      // The second writer's events since the rebuild's swap: tail them in before comparing.
      contention.rebuild = await contended.stop();
      contended = undefined;
      const catchUp = startProjectionRunner({ sql, projections: PROJECTIONS, pollMs: 600_000 });
      await catchUp.runUntilCaughtUp(600_000);
      await catchUp.stop();
    }
    const [check] = await sql<{ model: number; raw: number }[]>`
      select (select coalesce(sum(messages + typing + reactions), 0)::int from rm_user_daily) as model,
        (select (select count(*) from message_events) + (select count(*) from typing_events)
              + (select count(*) from reaction_time_events))::int as raw
    `;
    if (check!.model !== check!.raw) {
      // Nothing is written while the rebuilds run, so every tail event is a hint of what went wrong.
      throw new Error(
        `rebuild incomplete: read model has ${check!.model} events, log ${check!.raw}; tail events applied after the bulk pass: ${JSON.stringify(tailEvents)}`,
      );
    }
    const rebuildPerS = events / rebuildSeconds;
    log(`rebuild of all projections: ${rebuildSeconds.toFixed(2)} s (${Math.round(rebuildPerS)} events/s)`);
    // The rebuild leaves about a gigabyte of new pages and WAL behind it. Without this the
    // checkpoint it triggers writes them back while the endpoints are timed (they run first,
    // the raw questions after them), so the two sides would not share one steady state.
    await sql`checkpoint`;

    // Analytics endpoints vs the raw tables, same parameters (guild rotates, last 28 days).
    contended = contend();
    const cases = ANALYTICS_NAMES.map((name) => ({ name, extra: {} as Record<string, string | number> }));
    const endpoints: Record<
      string,
      { p95_ms: number; p50_ms: number; raw_p95_ms: number; raw_p50_ms: number; speedup: number }
    > = {};
    // Both sides on warm connections: one untimed run each first, and the raw side on a pool of
    // one (a new backend's first query pays for mapping its memory: ~0.3 s on a VM with costly
    // page faults, which made some raw "p95"s - the slowest of 5 runs - a connection start).
    const rawSql = createSql({
      url,
      applicationName: 'bench-projections-raw',
      max: 1,
      statementTimeoutMs: 0,
    });
    for (const c of cases) {
      const rawParams = (i: number) =>
        ({
          ...WINDOW,
          guildId: guildOf(i),
          limit: c.name === 'heatmap' ? 168 : 50,
          ...c.extra,
        }) as AnalyticsParams;
      await app.inject({
        url: `/v1/analytics/${c.name}?${new URLSearchParams({ ...WINDOW, guildId: guildOf(GUILDS - 1) })}`,
        headers: { authorization: `Bearer ${BENCH_TOKEN}` },
      });
      await runAnalytics(rawSql, RAW_QUERIES, c.name, rawParams(GUILDS - 1));
      const times: number[] = [];
      for (let i = 0; i < ENDPOINT_RUNS; i++) {
        const qs = new URLSearchParams({ ...WINDOW, guildId: guildOf(i), ...c.extra } as Record<
          string,
          string
        >);
        const started = performance.now();
        const res = await app.inject({
          url: `/v1/analytics/${c.name}?${qs}`,
          headers: { authorization: `Bearer ${BENCH_TOKEN}` },
        });
        times.push(performance.now() - started);
        if (res.statusCode !== 200) throw new Error(`${c.name}: ${res.statusCode} ${res.body}`);
      }
      const raw: number[] = [];
      for (let i = 0; i < RAW_RUNS; i++) {
        const started = performance.now();
        await runAnalytics(rawSql, RAW_QUERIES, c.name, rawParams(i));
        raw.push(performance.now() - started);
      }
      endpoints[c.name] = {
        p95_ms: r3(p95(times)),
        p50_ms: r3(p50(times)),
        raw_p95_ms: r3(p95(raw)),
        raw_p50_ms: r3(p50(raw)),
        speedup: Math.round((p95(raw) / p95(times)) * 10) / 10,
      };
      log(`  ${c.name}: p95 ${p95(times).toFixed(1)} ms, raw p95 ${p95(raw).toFixed(1)} ms`);
    }
    await rawSql.end();
    // Caught up once before the lag phase starts, which a continuous second writer never lets it be.
    contention.endpoints = await contended?.stop();

    // Lag under sustained ingest: ingest's own store + stored-notification path at RATE events/s.
    const runs: { seconds: number; applied: number }[] = [];
    const runner = startProjectionRunner({
      sql,
      projections: PROJECTIONS,
      nats,
      names,
      pollMs: 5000,
      batchSize: 5000,
      onRun: (r) => runs.push(r),
    });
    await runner.runUntilCaughtUp(600_000);
    contended = contend();
    const writerSql = createSql({ url, applicationName: 'bench-projections-writer', max: 4 });
    const statusSql = createSql({ url, applicationName: 'bench-projections-status', max: 1 });
    const cache = new PartitionCache();
    const source = generateEvents({
      events: RATE * LAG_SECONDS + RATE,
      start: START,
      days: DAYS,
      guilds: GUILDS,
      users: USERS,
      seed: 11,
    });
    const tickMs = 250;
    const perTick = Math.round((RATE * tickMs) / 1000);
    const lagSamples: number[] = [];
    let written = 0;
    let stopSampling = false;
    const sampler = (async () => {
      while (!stopSampling) {
        const status = await projectionStatus(statusSql, PROJECTIONS);
        lagSamples.push(Math.max(...status.map((s) => s.secondsBehind)));
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    const began = performance.now();
    // Like ingest's consumers: several batches in flight at once, each its own transaction.
    const inFlight = new Set<Promise<void>>();
    for (let tick = 0; (performance.now() - began) / 1000 < LAG_SECONDS; tick++) {
      const batch: SpywatcherEvent[] = [];
      for (let i = 0; i < perTick; i++) {
        const next = source.next();
        if (next.done) break;
        batch.push(toEvent(next.value));
      }
      while (inFlight.size >= 4) await Promise.race(inFlight);
      const write: Promise<void> = storeEvents(writerSql, cache, batch).then((outcome) => {
        publishStored(nats, names, outcome.stored);
        written += batch.length;
        inFlight.delete(write);
      });
      inFlight.add(write);
      const due = began + (tick + 1) * tickMs;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    await Promise.all(inFlight);
    const writeSeconds = (performance.now() - began) / 1000;
    stopSampling = true;
    await sampler;
    contention.lag = await contended?.stop();
    await app.close();
    await runner.runUntilCaughtUp(600_000);
    await runner.stop();
    await writerSql.end();
    await statusSql.end();
    const lagP95 = p95(lagSamples);
    const busy = runs.filter((r) => r.applied > 0);
    log(
      `runner: ${busy.length} runs that applied events, p95 ${p95(busy.map((r) => r.seconds)).toFixed(2)} s, mean ${(busy.reduce((a, r) => a + r.applied, 0) / Math.max(1, busy.length)).toFixed(0)} events/run`,
    );
    log(
      `ingest ${written} events in ${writeSeconds.toFixed(1)} s (${Math.round(written / writeSeconds)}/s); lag p95 ${lagP95.toFixed(3)} s over ${lagSamples.length} samples`,
    );

    const result = {
      benchmark: 'projections',
      mode: `${quick ? 'quick' : 'full'}${CONTENDED ? '-contended' : ''}`,
      events,
      load_s: r3(loadSeconds),
      scan_rows: scanned,
      scan_per_s: Math.round(scanPerS),
      rebuild_per_s: Math.round(rebuildPerS),
      rebuild_ratio: r3(rebuildPerS / scanPerS),
      count_scan_per_s: Math.round(countPerS),
      rebuild_ratio_vs_count: r3(rebuildPerS / countPerS),
      rebuild_s: r3(rebuildSeconds),
      rebuild_s_by_projection: perProjection,
      ingest_rate_per_s: Math.round(written / writeSeconds),
      ingest_path: 'apps/ingest storeEvents + publishStored (JetStream hop not included)',
      lag_p95_s: r3(lagP95),
      lag_max_s: r3(Math.max(0, ...lagSamples)),
      runner_run_p95_s: r3(p95(busy.map((r) => r.seconds))),
      endpoints,
      ...(CONTENDED ? { contention: contentionSummary(contention) } : {}),
      // The machine is shared: the 1-minute load average (2 cores) puts the figures in context.
      load_avg_1m: Math.round(loadavg()[0]! * 10) / 10,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await nats.close();
    await sql.end({ timeout: 5 });
    if (!args.keep) await admin(`drop database if exists ${dbName} with (force)`);
    else log(`kept database ${dbName}`);
  }
}

await main();
