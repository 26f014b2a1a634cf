import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createTestDatabase, type TestDatabase, testNatsNames, testNatsUrl } from '@spywatcher/testing';
import { freePort } from '@spywatcher/testing/service-contract';
import { waitFor as waitForProbe } from '@spywatcher/testing/wait-for';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { sampleEvents } from '../../libs/events/test/fixtures.ts';
import { renderDashboards } from './dashboards/main.ts';
import { prometheusBinary } from './prometheus.ts';
import { expandGrafanaVariables, metricNames } from './promql.ts';

// Prometheus (Debian's binary) scrapes the four services running as they run in production
// (their main.ts), with infra/prometheus's own configuration and rules. Every metric a rule or a
// dashboard panel reads must be exposed, every rule must evaluate, every panel query must run.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SERVICES = ['ingest', 'search', 'migrator', 'ops'] as const;
type Service = (typeof SERVICES)[number];
const TOKEN = 'observability-test-token-0123456789';
const bearer = { authorization: `Bearer ${TOKEN}` };

let db: TestDatabase;
let nats: NatsConnection;
let work: string;
let promUrl: string;
const names = testNatsNames('obs');
const ports = {} as Record<Service, number>;
const children: { name: string; child: ChildProcess; output: () => string }[] = [];

function start(name: string, args: string[], env: Record<string, string>, cwd = ROOT) {
  const child = spawn(args[0]!, args.slice(1), { cwd, env: { ...process.env, ...env }, stdio: 'pipe' });
  let output = '';
  child.stdout!.on('data', (d) => {
    output = (output + d).slice(-20_000);
  });
  child.stderr!.on('data', (d) => {
    output = (output + d).slice(-20_000);
  });
  children.push({ name, child, output: () => output });
  return child;
}

const waitFor = <T>(what: string, probe: () => Promise<T | undefined>, ms?: number) =>
  waitForProbe(what, probe, children, ms);

const serviceUrl = (s: Service, path: string) => `http://127.0.0.1:${ports[s]}${path}`;

async function promApi<T>(path: string, params: Record<string, string> = {}): Promise<T> {
  const res = await fetch(`${promUrl}/api/v1/${path}?${new URLSearchParams(params)}`);
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${body.error}`);
  return body.data;
}

async function startServices() {
  const common = {
    DATABASE_URL: db.url,
    NATS_URL: testNatsUrl(),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    AUTH_TOKENS: JSON.stringify([{ name: 'prometheus', token: TOKEN, scopes: ['*'] }]),
    AUTH_DISABLED: 'false',
  };
  const own: Record<Service, Record<string, string>> = {
    ingest: { NATS_STREAM: names.stream, NATS_SUBJECT_PREFIX: names.prefix },
    search: { PROJECTIONS_POLL_MS: '500' },
    migrator: {},
    ops: {
      BACKUP_DIR: join(work, 'backups'),
      OPS_DISK_PATHS: work,
      NATS_PREFIX: names.prefix,
      OPS_SCHEDULE_BACKUP: 'off',
      OPS_SCHEDULE_VERIFY: 'off',
      OPS_SCHEDULE_MAINTENANCE: 'off',
      OPS_SCHEDULE_PARTITIONS: 'off',
      OPS_SCHEDULE_RETENTION: 'off',
    },
  };
  for (const s of SERVICES) {
    ports[s] = await freePort();
    start(s, [process.execPath, `apps/${s}/src/main.ts`], { ...common, ...own[s], PORT: String(ports[s]) });
  }
  for (const s of SERVICES) {
    await waitFor(`${s} /ready`, async () => ((await fetch(serviceUrl(s, '/ready'))).ok ? true : undefined));
  }
}

/** Traffic that gives the metrics samples: stored and dead events, searches, a backup and its drill. */
async function exercise() {
  const events = Object.values(sampleEvents());
  const post = await fetch(serviceUrl('ingest', '/v1/events'), {
    method: 'POST',
    headers: { ...bearer, 'content-type': 'application/json' },
    body: JSON.stringify(events),
  });
  expect(post.status, await post.text()).toBeLessThan(300);
  // Through JetStream too, with one event ingest must dead-letter.
  const js = (await import('@nats-io/jetstream')).jetstream(nats);
  const jsm = await jetstreamManager(nats);
  await waitFor('the ingest stream', async () => ((await jsm.streams.info(names.stream)) ? true : undefined));
  for (const e of Object.values(sampleEvents())) {
    await js.publish(`${names.prefix}.events.${e.type}`, JSON.stringify(e), { msgID: e.id });
  }
  await js.publish(`${names.prefix}.events.message`, JSON.stringify({ type: 'message', data: {} }));
  for (const path of [
    '/v1/search/messages?q=hello',
    '/v1/analytics/lurkers',
    '/v1/analytics/heatmap',
    '/v1/users/100/timeline',
    '/v1/projections',
  ]) {
    await fetch(serviceUrl('search', path), { headers: bearer });
  }
  await fetch(serviceUrl('migrator', '/v1/migrations'), { headers: bearer });
  const job = async (path: string) => {
    const res = await fetch(serviceUrl('ops', path), { method: 'POST', headers: bearer });
    expect(res.status, await res.clone().text()).toBe(202);
    const { url } = (await res.json()) as { url: string };
    return waitFor(path, async () => {
      const j = (await (await fetch(serviceUrl('ops', url), { headers: bearer })).json()) as {
        status: string;
      };
      return j.status === 'running' ? undefined : j.status;
    });
  };
  expect(await job('/v1/backups')).toBe('succeeded');
  const list = (await (await fetch(serviceUrl('ops', '/v1/backups'), { headers: bearer })).json()) as {
    backups: { id: string }[];
  };
  const backup = list.backups[0];
  expect(await job(`/v1/backups/${backup!.id}/verify`)).toBe('succeeded');
}

async function startPrometheus() {
  const promPort = await freePort();
  promUrl = `http://127.0.0.1:${promPort}`;
  const config = parse(await readFile(`${ROOT}infra/prometheus/prometheus.yml`, 'utf8')) as {
    global: Record<string, string>;
    rule_files: string[];
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[]; authorization?: object }[];
  };
  // The shipped file with the test's addresses, a fast pace and absolute rule paths.
  config.global.scrape_interval = '2s';
  config.global.evaluation_interval = '2s';
  config.global.scrape_timeout = '2s';
  config.rule_files = config.rule_files.map((f) => `${ROOT}infra/prometheus/${f}`);
  // The token file the compose entrypoint writes, here in the temp dir.
  const tokenFile = join(work, 'metrics-token');
  await writeFile(tokenFile, TOKEN, { mode: 0o600 });
  for (const job of config.scrape_configs) {
    const s = job.job_name as Service;
    job.static_configs = [
      { targets: [job.job_name === 'prometheus' ? `127.0.0.1:${promPort}` : `127.0.0.1:${ports[s]}`] },
    ];
    if (job.authorization) {
      expect(job.authorization).toEqual({ credentials_file: '/prometheus/metrics-token' });
      job.authorization = { credentials_file: tokenFile };
    }
  }
  expect(config.scrape_configs.filter((j) => j.authorization).length).toBe(4);
  expect(config.scrape_configs.map((j) => j.job_name).sort()).toEqual([...SERVICES, 'prometheus'].sort());
  await writeFile(join(work, 'prometheus.yml'), stringify(config));
  start(
    'prometheus',
    [
      prometheusBinary(),
      `--config.file=${join(work, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(work, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--log.level=warn',
    ],
    {},
  );
  await waitFor('every target up', async () => {
    const { activeTargets } = await promApi<{ activeTargets: { health: string; labels: { job: string } }[] }>(
      'targets',
    );
    return activeTargets.length === 5 && activeTargets.every((t) => t.health === 'up') ? true : undefined;
  });
  // A few scrapes, so rate() and increase() have two samples to work with.
  await new Promise((r) => setTimeout(r, 8000));
}

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl(), name: 'observability-test' });
  work = await mkdtemp(join(tmpdir(), 'sw-observability-'));
  await startServices();
  await exercise();
  await startPrometheus();
}, 400_000);

afterAll(async () => {
  for (const { child } of children.reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.kill('SIGTERM');
    const exited = once(child, 'exit');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
  if (nats) {
    const jsm = await jetstreamManager(nats);
    await jsm.streams.delete(names.stream).catch(() => false);
    await jsm.streams.delete(`${names.stream}_DEAD`).catch(() => false);
    await nats.drain();
  }
  await db?.drop();
  if (work) await rm(work, { recursive: true, force: true });
}, 60_000);

interface RuleGroup {
  rules: { name: string; type: string; health: string; lastError?: string; query: string }[];
}

async function exposedMetrics(): Promise<Set<string>> {
  const metadata = await promApi<Record<string, { type: string }[]>>('metadata');
  const names = new Set<string>(['up', 'ALERTS', 'ALERTS_FOR_STATE']);
  for (const [name, entries] of Object.entries(metadata)) {
    names.add(name);
    if (entries.some((e) => e.type === 'histogram' || e.type === 'summary')) {
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    }
  }
  const { groups } = await promApi<{ groups: RuleGroup[] }>('rules');
  for (const g of groups) for (const r of g.rules) if (r.type === 'recording') names.add(r.name);
  return names;
}

function panelQueries(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const { file, json } of renderDashboards()) {
    const d = JSON.parse(json) as { panels: { title: string; targets?: { expr?: string }[] }[] };
    for (const p of d.panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `${file}: ${p.title}`, expr: t.expr });
    }
  }
  return out;
}

describe('Prometheus over the four running services', () => {
  it('scrapes every service', async () => {
    // A scrape may time out on a loaded machine; each target must have answered in the last minute.
    const up = await promApi<{ result: { metric: { job: string }; value: [number, string] }[] }>('query', {
      query: 'max by (job) (max_over_time(up[1m]))',
    });
    expect(Object.fromEntries(up.result.map((r) => [r.metric.job, r.value[1]]))).toEqual({
      ingest: '1',
      search: '1',
      migrator: '1',
      ops: '1',
      prometheus: '1',
    });
  });

  it('loads every alert rule from infra/prometheus and evaluates each without error', async () => {
    const { groups } = await promApi<{ groups: RuleGroup[] }>('rules');
    const rules = groups.flatMap((g) => g.rules);
    expect(rules.length).toBeGreaterThan(25);
    const broken = rules
      .filter((r) => r.health !== 'ok')
      .map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`);
    expect(broken).toEqual([]);
  });

  it('every metric an alert rule or a dashboard panel reads is exposed by a service', async () => {
    const exposed = await exposedMetrics();
    const { groups } = await promApi<{ groups: RuleGroup[] }>('rules');
    const used = new Map<string, string>();
    for (const r of groups.flatMap((g) => g.rules))
      for (const m of metricNames(r.query)) used.set(m, `rule ${r.name}`);
    for (const q of panelQueries()) for (const m of metricNames(q.expr)) used.set(m, q.where);
    expect(used.size).toBeGreaterThan(40);
    const missing = [...used].filter(([m]) => !exposed.has(m)).map(([m, where]) => `${m} (${where})`);
    expect(missing).toEqual([]);
  });

  it('every panel query runs, and the core ones have data', async () => {
    const empty: string[] = [];
    for (const q of panelQueries()) {
      const data = await promApi<{ result: unknown[] }>('query', {
        query: expandGrafanaVariables(q.expr),
      }).catch((error: Error) => {
        throw new Error(`${q.where}: ${error.message}`);
      });
      if (data.result.length === 0) empty.push(q.where);
    }
    // What this run produced: stored and dead events, searches, a backup and its restore drill.
    for (const query of [
      'ingest_events_stored_total',
      'ingest_events_dead_total',
      'ingest_consumer_pending',
      'projection_seconds_behind',
      'http_request_duration_seconds_count{job="search", route="/v1/search/messages"}',
      'spywatcher_backup_last_success_age_seconds',
      'spywatcher_backup_last_verified_age_seconds',
      'spywatcher_ops_job_last_failed{kind="verify"}',
      'spywatcher_disk_free_bytes',
      'spywatcher_db_replicas',
    ]) {
      const data = await promApi<{ result: unknown[] }>('query', { query });
      expect(data.result.length, query).toBeGreaterThan(0);
    }
    // Panels may be empty where nothing happened (no standby, no failure): say which, for the reader.
    expect(empty.length).toBeLessThan(panelQueries().length / 2);
  });
});
