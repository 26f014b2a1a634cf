/**
 * Ingest fault drill. A private NATS server, the drill's own database, two ingest processes and
 * a publisher at a steady rate with known ids; meanwhile: ingest kill -9 ×5, ingest's PostgreSQL
 * backends (of this database only) terminated ×5, NATS restarted once, and poison events mixed in
 * (deep nesting, lone surrogates, an unknown type, an id sent again with another time and type,
 * an upper-case id). Every event JetStream acknowledged must be stored exactly once.
 * Prints one JSON line last.
 *
 *   npm run drill:ingest            # full
 *   npm run drill:ingest -- --quick # CI-sized
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createSql, migrate, partitionUpkeep, type Sql, withDatabase } from '@spywatcher/db';
import {
  createEvent,
  createPublisher,
  DEFAULT_NATS_NAMES,
  EVENT_TYPES,
  eventTable,
  type SpywatcherEvent,
  subjects,
} from '@spywatcher/events';
import { MIGRATIONS_DIR } from '@spywatcher/migrator/migrations';
import { startNatsServer } from '@spywatcher/testing/nats-server';
import { freePort } from '@spywatcher/testing/ports';
import { finishDrill } from '../result.ts';
import { type ServiceProcess, spawnServiceProcess } from '../service-process.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const QUICK = values.quick;
const log = (line: string) => process.stderr.write(`[drill:ingest] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const dbName = `sw_drill_ingest_${randomBytes(3).toString('hex')}`;
const dbUrl = withDatabase(serverUrl, dbName);
const TOKEN = `drill-${randomBytes(12).toString('hex')}`;
/** Seconds between two faults, and events published per second. */
const FAULT_EVERY_S = QUICK ? 4 : 12;
const RATE = QUICK ? 400 : 1000;
const INSTANCES = 2;
const names = DEFAULT_NATS_NAMES;

const report: Record<string, unknown> = { quick: QUICK };
const crashes: { code: number | null; signal: string | null; output: string }[] = [];
const instances: (ServiceProcess | undefined)[] = [];
const children: ChildProcess[] = [];
let ending = false;

function startIngest(slot: number, natsUrl: string, port: number): ServiceProcess {
  const env = {
    DATABASE_URL: dbUrl,
    NATS_URL: natsUrl,
    LOG_LEVEL: process.env.DRILL_LOG_DIR ? 'debug' : 'warn',
    LOG_FORMAT: 'json',
    INGEST_BATCH_SIZE: '1000',
    INGEST_BATCH_TIME_MS: '20',
  };
  // DRILL_LOG_DIR keeps every instance's whole log there (to read after a failed drill)
  instances[slot] = spawnServiceProcess('ingest', TOKEN, env, children, {
    port,
    logDir: process.env.DRILL_LOG_DIR,
    onCrash: ({ code, signal, output }) => {
      if (ending) return;
      // a database or NATS fault must never end the process: count it, then start another
      crashes.push({ code, signal, output: output.slice(-2000) });
      log(`ingest ${slot} exited by itself (${signal ?? code}); restarting`);
      startIngest(slot, natsUrl, port);
    },
  });
  return instances[slot];
}

const joinEvent = (n: number) =>
  createEvent('join', {
    user_id: String(10_000_000 + n),
    username: `drill${n}`,
    guild_id: '900',
    account_age_days: n % 1000,
  }) as SpywatcherEvent;

/** Poison messages, each with the dead-letter reason it must end with (or `stored` for the upper-case id). */
function poisonBatch(k: number): { subject: string; payload: string; expect: string; id: string }[] {
  const s = subjects(names);
  const deep = joinEvent(900_000 + k);
  const depth = 5000;
  const deepPayload = JSON.stringify({ ...deep, metadata: { x: '__deep__' } }).replace(
    '"__deep__"',
    `${'{"a":'.repeat(depth)}{}${'}'.repeat(depth)}`,
  );
  const surrogate = joinEvent(910_000 + k);
  const unknown = { ...joinEvent(920_000 + k), type: 'bogus' };
  const upper = joinEvent(930_000 + k);
  return [
    { subject: s.event('join'), payload: deepPayload, expect: 'invalid', id: deep.id },
    {
      subject: s.event('join'),
      payload: JSON.stringify({ ...surrogate, data: { ...surrogate.data, username: 'bad\ud800name' } }),
      expect: 'invalid',
      id: surrogate.id,
    },
    {
      subject: `${names.prefix}.events.bogus`,
      payload: JSON.stringify(unknown),
      expect: 'invalid',
      id: unknown.id,
    },
    {
      subject: s.event('join'),
      payload: JSON.stringify({ ...upper, id: upper.id.toUpperCase() }),
      expect: 'stored',
      id: upper.id,
    },
  ];
}

/** Adds to `into` those of `ids` that are stored (the id registry every event table fills). */
async function readStored(sql: Sql, ids: string[], into: Set<string>): Promise<void> {
  if (ids.length === 0) return;
  const rows = await sql<
    { id: string }[]
  >`select id::text as id from event_ids where id = any(${ids}::uuid[])`;
  for (const r of rows) into.add(r.id);
}

/** Ids stored in more than one row, across every event table. */
async function duplicatedIds(sql: Sql): Promise<number> {
  const all = EVENT_TYPES.map((t) => `select id from ${eventTable(t)}`).join(' union all ');
  const [r] = await sql.unsafe<{ n: number }[]>(
    `select count(*)::int as n from (select id from (${all}) a group by id having count(*) > 1) d`,
  );
  return r!.n;
}

// ---------------------------------------------------------------------------------------------

const nats = await startNatsServer();
const admin = createSql({
  url: withDatabase(serverUrl, 'postgres'),
  applicationName: 'drill-ingest',
  max: 1,
});
const ports = await Promise.all(Array.from({ length: INSTANCES }, () => freePort()));
let nc: NatsConnection | undefined;
try {
  await admin.unsafe(`create database "${dbName}"`);
  const sql = createSql({ url: dbUrl, applicationName: 'drill-ingest', max: 2, statementTimeoutMs: 0 });
  await migrate({ sql, dir: MIGRATIONS_DIR });
  await partitionUpkeep(sql, { ahead: 2, skipRetention: true });
  nc = await connect({
    servers: nats.url,
    name: 'drill-ingest',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 200,
  });
  for (let slot = 0; slot < INSTANCES; slot++) startIngest(slot, nats.url, ports[slot]!);
  for (const instance of instances) await instance!.ready();
  log(`database ${dbName}, NATS on ${nats.port}, ${INSTANCES} ingest instances ready`);

  // the steady publisher ------------------------------------------------------------------------
  const publisher = createPublisher({ nc, names, maxInFlight: 256, retries: 50, maxBackoffMs: 1000 });
  const acked: string[] = [];
  let published = 0;
  let publishing = true;
  const steady = (async () => {
    const tick = 50;
    const perTick = Math.max(1, Math.round((RATE * tick) / 1000));
    for (let n = 0; publishing; ) {
      const started = performance.now();
      const batch = Array.from({ length: perTick }, () => joinEvent(n++));
      published += batch.length;
      const r = await publisher.publishAll(batch);
      const failed = new Set(r.failed.map((f) => f.id));
      for (const e of batch) if (!failed.has(e.id)) acked.push(e.id);
      await sleep(Math.max(0, tick - (performance.now() - started)));
    }
  })();

  // the watcher: what is stored, stalls, and how soon the messages of a killed instance come back
  const stored = new Set<string>();
  let storedUpTo = 0; // acked[0 .. storedUpTo) are all stored
  let lastGrowth = performance.now();
  let maxStallS = 0;
  const kills: { at: number; ackedBefore: number; resumeS?: number }[] = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      try {
        const before = stored.size;
        const outstanding = acked.slice(storedUpTo, storedUpTo + 50_000).filter((id) => !stored.has(id));
        await readStored(sql, outstanding, stored);
        const now = performance.now();
        if (stored.size > before) lastGrowth = now;
        while (storedUpTo < acked.length && stored.has(acked[storedUpTo]!)) storedUpTo++;
        if (storedUpTo < acked.length) maxStallS = Math.max(maxStallS, (now - lastGrowth) / 1000);
        else lastGrowth = now;
        for (const k of kills)
          if (k.resumeS === undefined && storedUpTo >= k.ackedBefore) k.resumeS = (now - k.at) / 1000;
      } catch (error) {
        log(`watcher: ${(error as Error).message}`);
      }
      await sleep(250);
    }
  })();

  // faults ----------------------------------------------------------------------------------------
  const js = jetstream(nc);
  const poison: ReturnType<typeof poisonBatch> = [];
  let conflictIds: string[] = [];
  const sendPoison = async (k: number) => {
    for (const p of poisonBatch(k)) {
      poison.push(p);
      await js
        .publish(p.subject, p.payload, { msgID: `poison-${p.id}` })
        .catch((e) => log(`poison: ${e.message}`));
    }
    // an id already stored, sent again with another time and another type
    const victim = acked[Math.floor(acked.length / 2)];
    if (victim && stored.has(victim)) {
      const again = createEvent('typing', {
        user_id: '1',
        username: 'drill',
        channel_id: '2',
        channel_name: 'general',
        guild_id: '900',
      }) as SpywatcherEvent;
      const payload = JSON.stringify({
        ...again,
        id: victim,
        occurred_at: new Date(Date.now() - 60_000).toISOString(),
      });
      await js
        .publish(subjects(names).event('typing'), payload, { msgID: `conflict-${victim}` })
        .catch(() => {});
      conflictIds = [...conflictIds, victim];
    }
  };
  let terminated = 0;
  const terminateBackends = async () => {
    const rows = await admin<{ n: number }[]>`
      select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
       where datname = ${dbName} and application_name = 'spywatcher-ingest'`;
    terminated += rows[0]!.n;
  };
  const restartReadyS: number[] = [];
  const killOne = async (k: number) => {
    const slot = k % INSTANCES;
    kills.push({ at: performance.now(), ackedBefore: acked.length });
    await instances[slot]?.kill9();
    const restarted = performance.now();
    // as an orchestrator would: the next fault waits for the replacement (a loaded machine takes
    // long to start a process), so each kill leaves a live instance to take the messages over
    await startIngest(slot, nats.url, ports[slot]!).ready();
    restartReadyS.push(Math.round((performance.now() - restarted) / 100) / 10);
  };
  const plan: [string, () => Promise<void>][] = [
    ['poison', () => sendPoison(1)],
    ['kill -9', () => killOne(0)],
    ['terminate backends', terminateBackends],
    ['kill -9', () => killOne(1)],
    ['terminate backends', terminateBackends],
    ['poison', () => sendPoison(2)],
    ['kill -9', () => killOne(2)],
    ['terminate backends', terminateBackends],
    [
      'restart NATS',
      async () => {
        await nats.kill();
        await sleep(1000);
        await nats.start();
      },
    ],
    ['kill -9', () => killOne(3)],
    ['terminate backends', terminateBackends],
    ['poison', () => sendPoison(3)],
    ['kill -9', () => killOne(4)],
    ['terminate backends', terminateBackends],
  ];
  await sleep(FAULT_EVERY_S * 1000);
  for (const [what, act] of plan) {
    log(`${what} (acked ${acked.length}, stored ${stored.size})`);
    await act();
    await sleep(FAULT_EVERY_S * 1000);
  }
  publishing = false;
  await steady;
  await publisher.flush();

  // drain: everything acked stored, then the counts --------------------------------------------
  const drainUntil = Date.now() + (QUICK ? 60_000 : 180_000);
  while (storedUpTo < acked.length && Date.now() < drainUntil) await sleep(500);
  await sleep(2000);
  watching = false;
  await watcher;
  await readStored(sql, [...acked, ...poison.map((p) => p.id)], stored);

  const jsm = await jetstreamManager(nc);
  const deadStream = `${names.stream}_DEAD`;
  const deadInfo = await jsm.streams.info(deadStream);
  const reasons: Record<string, number> = {};
  const deadIds = new Map<string, string>();
  for (
    let seq = deadInfo.state.first_seq;
    seq <= deadInfo.state.last_seq && deadInfo.state.messages > 0;
    seq++
  ) {
    const m = await jsm.streams.getMessage(deadStream, { seq }).catch(() => null);
    if (!m) continue;
    const letter = m.json<{ reason: string; payload: string }>();
    reasons[letter.reason] = (reasons[letter.reason] ?? 0) + 1;
    const id = /"id"\s*:\s*"([^"]+)"/.exec(letter.payload.slice(0, 200))?.[1]?.toLowerCase();
    if (id) deadIds.set(id, letter.reason);
  }
  const ackedSet = new Set(acked);
  const poisonHandled = poison.filter((p) =>
    p.expect === 'stored' ? stored.has(p.id) : deadIds.get(p.id) === p.expect,
  ).length;
  const conflictsDead = conflictIds.filter((id) => deadIds.get(id) === 'conflict').length;
  const [registry] = await sql<{ n: number }[]>`select count(*)::int as n from event_ids`;
  const lost = [...ackedSet].filter((id) => !stored.has(id)).length;
  const duplicated = await duplicatedIds(sql);
  const resumes = kills.map((k) => (k.resumeS === undefined ? null : Math.round(k.resumeS * 10) / 10));
  Object.assign(report, {
    published,
    acked: ackedSet.size,
    stored: [...ackedSet].filter((id) => stored.has(id)).length,
    lost,
    duplicated,
    conflicts: reasons.conflict ?? 0,
    dead_lettered: deadInfo.state.messages,
    crashes: crashes.length,
    max_stall_s: Math.round(maxStallS * 10) / 10,
    resume_after_kill_s: resumes.some((r) => r === null) ? null : Math.max(...(resumes as number[])),
    resume_after_each_kill_s: resumes,
    kills: kills.length,
    restart_ready_s: restartReadyS,
    backends_terminated: terminated,
    nats_restarts: 1,
    poison_sent: poison.length + conflictIds.length,
    poison_handled: poisonHandled + conflictsDead,
    dead_letters_by_reason: reasons,
    registry_ids: registry!.n,
    rate_per_s: RATE,
    crash_output: crashes.map((c) => c.output.split('\n').slice(-5).join('\n')),
  });
  await sql.end({ timeout: 5 });
} catch (error) {
  report.error = (error as Error).message;
  log(`failed: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
} finally {
  ending = true;
  for (const instance of instances) await instance?.kill9().catch(() => {});
  await nc?.close().catch(() => {});
  await nats.stop().catch(() => {});
  await admin.unsafe(`drop database if exists "${dbName}" with (force)`).catch(() => {});
  await admin.end({ timeout: 5 });
}

const safe =
  report.lost === 0 &&
  report.duplicated === 0 &&
  report.crashes === 0 &&
  report.poison_handled === report.poison_sent &&
  typeof report.resume_after_kill_s === 'number' &&
  typeof report.max_stall_s === 'number';
const met = safe && (report.resume_after_kill_s as number) <= 10 && (report.max_stall_s as number) <= 15;
if (crashes.length === 0) delete report.crash_output;
finishDrill(report, {
  headline: [
    'published',
    'acked',
    'stored',
    'lost',
    'duplicated',
    'conflicts',
    'dead_lettered',
    'crashes',
    'max_stall_s',
    'resume_after_kill_s',
  ],
  safe,
  met,
  quick: QUICK,
});
