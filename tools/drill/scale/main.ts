/**
 * Scale-out drill, on one box and private servers only:
 *   - three nats-server processes clustered by infra/nats/cluster/node.conf, the streams at R3;
 *   - a private PostgreSQL primary and its streaming replica (tools/replica's helpers);
 *   - ingest as two processes on one durable consumer, search reading from the replica.
 * Steps: drain a backlog with one ingest instance, then with two (the baseline and the gain);
 * publish at a steady rate while the stream leader is killed (SIGKILL) mid-run; sample the replica's
 * replay lag throughout; check every confirmed event is stored once and searchable on the replica;
 * then fail over: stop the primary, promote the replica, point ingest and search at it.
 * Prints one JSON line last.
 *
 *   npm run drill:scale            # full
 *   npm run drill:scale -- --quick # CI-sized
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createSql, migrate, partitionUpkeep, type Sql, withDatabase } from '@spywatcher/db';
import { createEvent, createPublisher, DEFAULT_NATS_NAMES, type SpywatcherEvent } from '@spywatcher/events';
import { MIGRATIONS_DIR } from '@spywatcher/migrator/migrations';
import { type NatsCluster, startNatsCluster } from '@spywatcher/testing/nats-cluster';
import {
  type PgReplica,
  type PgServer,
  startPrimary,
  startReplica,
} from '@spywatcher/testing/postgres-replica';
import { finishDrill } from '../result.ts';
import { type ServiceProcess, startServiceProcess, waitUntil } from '../service-process.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const QUICK = values.quick;
const SIZE = QUICK
  ? { backlog: 1000, rate: 200, runS: 15, killAtS: 5, searched: 10 }
  : { backlog: 20_000, rate: 500, runS: 60, killAtS: 20, searched: 50 };
const TOKEN = `drill-${randomBytes(12).toString('hex')}`;
const log = (line: string) => process.stderr.write(`[drill:scale] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children: ChildProcess[] = [];
const report: Record<string, unknown> = { quick: QUICK, load_avg_1m_start: Number(loadavg()[0]!.toFixed(1)) };

const p95 = (xs: number[]) => {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))]!);
};

let seq = 0;
/** A message event whose content carries a word of its own, so search can find exactly it. */
function messageEvent(): { event: SpywatcherEvent; word: string } {
  const n = seq++;
  const word = `scaledrill${randomBytes(5).toString('hex')}`;
  const event = createEvent('message', {
    user_id: String(100_000 + (n % 500)),
    username: `drill${n % 500}`,
    channel_id: String(200_000 + (n % 20)),
    channel_name: `chan${n % 20}`,
    guild_id: String(300_000 + (n % 8)),
    content: `event ${n} says ${word}`,
  }) as SpywatcherEvent;
  return { event, word };
}

const storedCount = async (sql: Sql) =>
  (await sql<{ n: number }[]>`select count(*)::int as n from message_events`)[0]!.n;

/** Sum of ingest_events_stored_total on an instance's /metrics. */
async function storedByInstance(s: ServiceProcess): Promise<number> {
  const res = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  if (!res.ok) throw new Error(`${s.url}/metrics answered ${res.status}`);
  return (await res.text())
    .split('\n')
    .filter((l) => l.startsWith('ingest_events_stored_total'))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

/**
 * Capacity of the running ingest instances: they are frozen (SIGSTOP) while `n` events are
 * published, so the backlog is whole when they resume (SIGCONT); the rate is the backlog over the
 * time from the resume to its last event stored.
 */
async function drainRate(
  nc: NatsConnection,
  sql: Sql,
  n: number,
  instances: ServiceProcess[],
): Promise<number> {
  const target = (await storedCount(sql)) + n;
  for (const i of instances) i.child.kill('SIGSTOP');
  try {
    const publisher = createPublisher({ nc, maxInFlight: 512, retries: 10 });
    const sent = await publisher.publishAll(Array.from({ length: n }, () => messageEvent().event));
    if (sent.failed.length > 0) throw new Error(`${sent.failed.length} backlog events were not published`);
  } finally {
    for (const i of instances) i.child.kill('SIGCONT');
  }
  const resumed = performance.now();
  await waitUntil(
    'the backlog to drain',
    async () => ((await storedCount(sql)) >= target ? true : undefined),
    300_000,
  );
  return Math.round(n / ((performance.now() - resumed) / 1000));
}

/**
 * Replication lag every 200 ms: `replay_lag` as the primary measures it (pg_stat_replication: from
 * flushing WAL to the standby reporting it replayed), and, as a client sees it, the time from
 * reading the primary's WAL position to the replica having replayed that position.
 */
function sampleReplicaLag(primary: Sql, replica: Sql) {
  const server: number[] = [];
  const client: number[] = [];
  let running = true;
  const serverLoop = (async () => {
    while (running) {
      const [r] = await primary<{ lag_ms: number | null }[]>`
        select max(extract(epoch from replay_lag) * 1000)::float8 as lag_ms from pg_stat_replication
      `;
      server.push(r!.lag_ms ?? 0);
      await sleep(200);
    }
  })();
  const clientLoop = (async () => {
    while (running) {
      const t0 = performance.now();
      const [current] = await primary<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`;
      // polled every 5 ms: the lag is the figure, so the probe must be finer than it
      for (;;) {
        const [r] = await replica<
          { ok: boolean }[]
        >`select pg_last_wal_replay_lsn() >= ${current!.lsn}::pg_lsn as ok`;
        if (r!.ok || !running) break;
        await sleep(5);
      }
      client.push(performance.now() - t0);
      await sleep(200);
    }
  })();
  return {
    server,
    client,
    stop: async () => {
      running = false;
      await Promise.all([serverLoop, clientLoop]);
    },
  };
}

/** Progress of the stored count, polled every 100 ms: the longest gap after `from` is the stall. */
function watchProgress(sql: Sql) {
  const increases: number[] = [];
  let running = true;
  let last = -1;
  const done = (async () => {
    while (running) {
      const n = await storedCount(sql).catch(() => last);
      if (n > last) increases.push(performance.now());
      last = n;
      await sleep(100);
    }
  })();
  return {
    longestGapAfter(from: number, until: number): number {
      const points = [from, ...increases.filter((t) => t > from && t <= until)];
      let gap = 0;
      for (let i = 1; i < points.length; i++) gap = Math.max(gap, points[i]! - points[i - 1]!);
      if (points.length === 1) gap = until - from;
      return gap;
    },
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** Publishes at `rate` events/s for `seconds`, counting what JetStream confirmed. */
async function steadyPublish(
  nc: NatsConnection,
  rate: number,
  seconds: number,
  onTick: (elapsedS: number) => void,
) {
  const publisher = createPublisher({
    nc,
    maxInFlight: 512,
    retries: 30,
    backoffMs: 100,
    maxBackoffMs: 1000,
  });
  const confirmed = new Map<string, string>();
  const failed: string[] = [];
  const started = performance.now();
  let sent = 0;
  const inFlight: Promise<void>[] = [];
  for (;;) {
    const elapsed = (performance.now() - started) / 1000;
    if (elapsed >= seconds) break;
    onTick(elapsed);
    const due = Math.floor(elapsed * rate) - sent;
    if (due > 0) {
      const batch = Array.from({ length: due }, messageEvent);
      sent += due;
      // not awaited here: a batch stuck in a leader election must not hold the steady rate back
      inFlight.push(
        publisher.publishAll(batch.map((b) => b.event)).then((r) => {
          const bad = new Set(r.failed.map((f) => f.id));
          for (const b of batch) {
            if (bad.has(b.event.id)) failed.push(b.event.id);
            else confirmed.set(b.event.id, b.word);
          }
        }),
      );
    }
    await sleep(20);
  }
  await Promise.all(inFlight);
  return { confirmed, failed, sent };
}

async function streamLeader(nc: NatsConnection): Promise<string> {
  const jsm = await jetstreamManager(nc);
  return waitUntil(
    'a stream leader',
    async () => (await jsm.streams.info(DEFAULT_NATS_NAMES.stream)).cluster?.leader,
  );
}

async function searchFinds(search: ServiceProcess, word: string, id: string): Promise<boolean> {
  const res = await fetch(`${search.url}/v1/search/messages?q=${encodeURIComponent(word)}`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  if (!res.ok) return false;
  const body = (await res.json()) as { results: { id: string }[] };
  return body.results.some((r) => r.id === id);
}

async function createServiceDatabase(server: PgServer): Promise<string> {
  const admin = createSql({ url: server.url, applicationName: 'drill-scale', max: 1 });
  await admin`create database spywatcher`;
  await admin.end();
  const url = withDatabase(server.url, 'spywatcher');
  const sql = createSql({ url, applicationName: 'drill-scale', max: 2, statementTimeoutMs: 0 });
  await migrate({ sql, dir: MIGRATIONS_DIR });
  await partitionUpkeep(sql, { ahead: 2, skipRetention: true });
  await sql.end();
  return url;
}

// ---------------------------------------------------------------------------------------------

let cluster: NatsCluster | undefined;
let primary: PgServer | undefined;
let replica: PgReplica | undefined;
const pools: Sql[] = [];
const started = performance.now();

/** Ends every process and server this drill started, by PID; runs once. */
let cleaned: Promise<void> | undefined;
const cleanUp = () => {
  cleaned ??= (async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const sql of pools) await sql.end({ timeout: 5 }).catch(() => {});
    await cluster?.stop().catch(() => {});
    await replica?.destroy().catch(() => {});
    await primary?.destroy().catch(() => {});
  })();
  return cleaned;
};
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    log(`${signal}: stopping the servers it started`);
    void cleanUp().finally(() => process.exit(130));
  });

try {
  const [c, p] = await Promise.all([startNatsCluster(), startPrimary()]);
  cluster = c;
  primary = p;
  const dbUrl = await createServiceDatabase(primary);
  replica = await startReplica({ primaryUrl: primary.url, slot: 'search_replica' });
  const replicaDbUrl = withDatabase(replica.url, 'spywatcher');
  log(`NATS cluster ${cluster.url}; primary :${primary.port}, replica :${replica.port}`);
  const onPrimary = createSql({ url: dbUrl, applicationName: 'drill-scale', max: 2 });
  const onReplica = createSql({ url: replicaDbUrl, applicationName: 'drill-scale', max: 2 });
  pools.push(onPrimary, onReplica);
  const nc = await connect({
    servers: cluster.url.split(','),
    name: 'drill-scale',
    maxReconnectAttempts: -1,
  });

  const ingestEnv = {
    DATABASE_URL: dbUrl,
    NATS_URL: cluster.url,
    NATS_STREAM_REPLICAS: '3',
    INGEST_BATCH_TIME_MS: '20',
    INGEST_ACK_WAIT_MS: '5000',
  };
  const ingestA = await startServiceProcess('ingest', TOKEN, ingestEnv, children);
  const search = await startServiceProcess(
    'search',
    TOKEN,
    {
      DATABASE_URL: dbUrl,
      SEARCH_DATABASE_URL: replicaDbUrl,
      NATS_URL: cluster.url,
      PROJECTIONS_RUNNER: 'false',
    },
    children,
  );
  const streams = await (await jetstreamManager(nc)).streams.info(DEFAULT_NATS_NAMES.stream);
  report.stream_replicas = streams.config.num_replicas;

  // 1. capacity: one instance, then two --------------------------------------------------------
  report.drain_per_s_1_instance = await drainRate(nc, onPrimary, SIZE.backlog, [ingestA]);
  const ingestB = await startServiceProcess('ingest', TOKEN, ingestEnv, children);
  report.drain_per_s_2_instances = await drainRate(nc, onPrimary, SIZE.backlog, [ingestA, ingestB]);
  report.scale_ratio = Number(
    ((report.drain_per_s_2_instances as number) / (report.drain_per_s_1_instance as number)).toFixed(2),
  );
  log(
    `drain: 1 instance ${report.drain_per_s_1_instance}/s, 2 instances ${report.drain_per_s_2_instances}/s`,
  );

  // 2. steady traffic, the stream leader killed mid-run ---------------------------------------
  const baseCount = await storedCount(onPrimary);
  const byInstanceBefore = [await storedByInstance(ingestA), await storedByInstance(ingestB)];
  const lag = sampleReplicaLag(onPrimary, onReplica);
  const progress = watchProgress(onPrimary);
  let killedAt = 0;
  let killing: Promise<void> | undefined;
  const runStart = performance.now();
  const run = await steadyPublish(nc, SIZE.rate, SIZE.runS, (elapsed) => {
    if (killing || elapsed < SIZE.killAtS) return;
    killing = (async () => {
      const leader = await streamLeader(nc);
      report.killed_leader = leader;
      killedAt = performance.now();
      await cluster!.node(leader).kill();
      log(`killed the stream leader ${leader} at ${elapsed.toFixed(1)} s`);
    })();
  });
  await killing;
  const expected = baseCount + run.confirmed.size;
  await waitUntil(
    'every confirmed event stored',
    async () => ((await storedCount(onPrimary)) >= expected ? true : undefined),
    180_000,
  ).catch((error) => log((error as Error).message));
  const runEnd = performance.now();
  report.new_leader = await streamLeader(nc).catch(() => null);
  report.leader_kill_stall_s = Number((progress.longestGapAfter(killedAt, runEnd) / 1000).toFixed(2));
  await progress.stop();
  await lag.stop();
  const byInstanceAfter = [await storedByInstance(ingestA), await storedByInstance(ingestB)];
  const runSeconds = (runEnd - runStart) / 1000;
  report.per_instance_per_s = byInstanceAfter.map((n, i) =>
    Math.round((n - byInstanceBefore[i]!) / runSeconds),
  );
  report.replica_lag_p95_ms = p95(lag.server);
  report.replica_lag_max_ms = lag.server.length ? Math.round(Math.max(...lag.server)) : null;
  report.replica_lag_samples = lag.server.length;
  report.replica_visible_p95_ms = p95(lag.client);

  // 3. every confirmed event stored once; a sample found by search on the replica ------------
  const rows = await onPrimary<{ id: string; n: number }[]>`
    select id::text as id, count(*)::int as n from message_events group by id
  `;
  const stored = new Map(rows.map((r) => [r.id, r.n]));
  const ids = [...run.confirmed.keys()];
  report.published = run.confirmed.size;
  report.publish_failed = run.failed.length;
  report.stored = ids.filter((id) => stored.has(id)).length;
  report.lost = ids.length - (report.stored as number);
  report.duplicated = rows.filter((r) => r.n > 1).length;
  const sample = ids
    .filter((_, i) => i % Math.max(1, Math.floor(ids.length / SIZE.searched)) === 0)
    .slice(0, SIZE.searched);
  const found = await Promise.all(sample.map((id) => searchFinds(search, run.confirmed.get(id)!, id)));
  // the drill's token holds every scope, metrics:read included: /ready then shows its checks
  const readyAnswer = await fetch(`${search.url}/ready`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const ready = (await readyAnswer.json()) as {
    checks?: Record<string, { details?: Record<string, unknown> }>;
  };
  report.search_checked = sample.length;
  report.search_on_replica_ok =
    found.every(Boolean) && sample.length > 0 && ready.checks?.search_database?.details?.standby === true;
  report.ingest_instances = 2;
  report.crashes = [ingestA, ingestB, search].filter((s) => s.crashed()).length;

  // 4. failover: the primary is lost, the replica is promoted, services are pointed at it ------
  const failoverStart = performance.now();
  // the primary is lost: its clients die with it rather than shutting down in order
  await Promise.all([ingestA.kill9(), ingestB.kill9(), search.kill9()]);
  await primary.stop();
  await replica.promote();
  const promotedEnv = { ...ingestEnv, DATABASE_URL: replicaDbUrl };
  const [ingestC, searchC] = await Promise.all([
    startServiceProcess('ingest', TOKEN, promotedEnv, children),
    startServiceProcess(
      'search',
      TOKEN,
      { DATABASE_URL: replicaDbUrl, NATS_URL: cluster.url, PROJECTIONS_RUNNER: 'false' },
      children,
    ),
  ]);
  const after = messageEvent();
  await createPublisher({ nc, retries: 10 }).publish(after.event);
  await waitUntil('the post-failover event to be searchable', async () =>
    (await searchFinds(searchC, after.word, after.event.id)) ? true : undefined,
  );
  report.failover_s = Number(((performance.now() - failoverStart) / 1000).toFixed(1));
  report.failover_ok = true;
  await Promise.all([ingestC.stop(), searchC.stop()]);
  await nc.close();
} catch (error) {
  report.error = (error as Error).message;
  log(`failed: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}

report.duration_s = Math.round((performance.now() - started) / 1000);
report.load_avg_1m_end = Number(loadavg()[0]!.toFixed(1));
const safe =
  report.lost === 0 &&
  report.duplicated === 0 &&
  typeof report.leader_kill_stall_s === 'number' &&
  typeof report.replica_lag_p95_ms === 'number' &&
  report.search_on_replica_ok === true &&
  report.failover_ok === true &&
  report.crashes === 0;
const met =
  safe && (report.leader_kill_stall_s as number) <= 10 && (report.replica_lag_p95_ms as number) <= 1000;
finishDrill(report, {
  headline: [
    'published',
    'stored',
    'lost',
    'duplicated',
    'leader_kill_stall_s',
    'ingest_instances',
    'per_instance_per_s',
    'replica_lag_p95_ms',
    'search_on_replica_ok',
  ],
  safe,
  met,
  quick: QUICK,
});
