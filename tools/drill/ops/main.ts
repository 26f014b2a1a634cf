/**
 * Ops fault drill. On a private NATS and its own database, with the real ingest and ops
 * services as processes:
 *   1. restore over the live database while a SQL writer, JetStream publishers and HTTP ingest
 *      run: every confirmed write must be in the restored database or the safety backup;
 *   2. a backup into a tiny filesystem (tmpfs): refused up front, or failing mid-write with
 *      ENOSPC, and the process stays up;
 *   3. an S3 endpoint stalled with SIGSTOP (s3rver) during the off-site copy, then a cancel;
 *   4. kill -9 of ops during a backup, a verify and a restore: restarted, nothing left over;
 *   5. a broken manifest: listings, health and /metrics answer, a new backup succeeds.
 * Prints one JSON line last.
 *
 *   npm run drill:ops            # full
 *   npm run drill:ops -- --quick # CI-sized
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
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
import { freePort } from '@spywatcher/testing/ports';
import { finishDrill } from '../result.ts';
import { startServiceProcess, waitUntil } from '../service-process.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const QUICK = values.quick;
const root = fileURLToPath(new URL('../../..', import.meta.url));
const execFileAsync = promisify(execFile);
const log = (line: string) => process.stderr.write(`[drill:ops] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const adminUrl = withDatabase(serverUrl, 'postgres');
const suffix = randomBytes(3).toString('hex');
const dbName = `sw_drill_ops_${suffix}`;
const dbUrl = withDatabase(serverUrl, dbName);
const TOKEN = `drill-${randomBytes(12).toString('hex')}`;
const TRAFFIC_MS = QUICK ? 2000 : 6000;
const NOISE_ROWS = QUICK ? 120_000 : 400_000;

const children: ChildProcess[] = [];
const mounts: string[] = [];
const tempDirs: string[] = [];
const extraDatabases: string[] = [];
let http500s = 0;

async function tempDir(label: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `sw-drill-ops-${label}-`));
  tempDirs.push(dir);
  return dir;
}

const startService = (name: 'ingest' | 'ops', env: Record<string, string>) =>
  startServiceProcess(name, TOKEN, env, children);

/** An ops HTTP call; every 500 is counted (the drill's target is none). */
async function call(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 500) http500s++;
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON (metrics)
  }
  return { status: res.status, json, text };
}

interface JobView {
  id: string;
  status: string;
  error: string | null;
  result: Record<string, unknown> | null;
  progress: { percent: number; message?: string };
}

/** Waits for a job's end on NATS (<prefix>.ops.jobs.<id>): no HTTP polling while a restore swaps the database. */
function jobEnd(nc: NatsConnection, id: string): Promise<JobView> {
  const sub = nc.subscribe(subjects(DEFAULT_NATS_NAMES).opsJob(id));
  return (async () => {
    for await (const m of sub) {
      const job = m.json<JobView>();
      if (job.status !== 'running') {
        sub.unsubscribe();
        return job;
      }
    }
    throw new Error(`progress of job ${id} ended without a result`);
  })();
}

/** Polls a job over HTTP until `when` holds for it (or it ended). */
async function jobWhen(base: string, id: string, when: (j: JobView) => boolean): Promise<JobView> {
  // dumps and restores of the full-size drill take minutes on a loaded machine
  return waitUntil(
    `job ${id}`,
    async () => {
      const { status, json } = await call(base, 'GET', `/v1/jobs/${id}`);
      if (status !== 200) return undefined;
      const job = json as unknown as JobView;
      return when(job) || job.status !== 'running' ? job : undefined;
    },
    600_000,
  );
}

async function start(base: string, path: string, body?: unknown): Promise<string> {
  const { status, json, text } = await call(base, 'POST', path, body);
  if (status !== 202) throw new Error(`POST ${path} answered ${status}: ${text}`);
  return (json.job as { id: string }).id;
}

async function storedEventIds(sql: Sql): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const type of EVENT_TYPES) {
    for (const r of await sql.unsafe<{ id: string }[]>(`select id::text as id from ${eventTable(type)}`))
      ids.add(r.id);
  }
  return ids;
}

const joinEvent = (i: number) =>
  createEvent('join', {
    user_id: String(10_000 + i),
    username: `drill${i}`,
    guild_id: '900',
    account_age_days: i % 1000,
  }) as SpywatcherEvent;

async function tinyFs(sizeBytes: number): Promise<string | null> {
  const dir = await tempDir('tmpfs');
  try {
    await execFileAsync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir]);
    mounts.push(dir);
    return dir;
  } catch (error) {
    log(`cannot mount a tmpfs (${(error as Error).message.split('\n')[0]}); the disk-full phase is skipped`);
    return null;
  }
}

async function partials(dirs: string[]): Promise<number> {
  let n = 0;
  for (const dir of dirs)
    n += (await readdir(dir).catch(() => [])).filter((f) => f.endsWith('.partial')).length;
  return n;
}

// ---------------------------------------------------------------------------------------------

const natsDir = await tempDir('nats');
const natsPort = await freePort();
const natsServer = spawn(
  process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server',
  ['-js', '-sd', natsDir, '-a', '127.0.0.1', '-p', String(natsPort)],
  { stdio: 'ignore' },
);
children.push(natsServer);
const natsUrl = `nats://127.0.0.1:${natsPort}`;
const admin = createSql({ url: adminUrl, applicationName: 'drill-ops', max: 1 });
const report: Record<string, unknown> = { quick: QUICK };

try {
  const nc = await waitUntil('the private NATS', () => connect({ servers: natsUrl, name: 'drill-ops' }));
  await admin.unsafe(`create database "${dbName}"`);
  const setupSql = createSql({ url: dbUrl, applicationName: 'drill-ops', max: 2, statementTimeoutMs: 0 });
  await migrate({ sql: setupSql, dir: MIGRATIONS_DIR });
  await partitionUpkeep(setupSql, { ahead: 2, skipRetention: true });
  await setupSql`create table drill_writes (id bigint primary key, at timestamptz not null default now())`;
  // incompressible rows: dumps big enough to fill a small disk and to be caught by a kill -9
  await setupSql`create table drill_noise (id int, noise text)`;
  await setupSql`insert into drill_noise select i, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) from generate_series(1, ${NOISE_ROWS}) i`;
  await setupSql.end();
  log(`database ${dbName} ready (${NOISE_ROWS} noise rows); NATS on ${natsPort}`);

  const backupDir = await tempDir('backups');
  const opsEnv = {
    DATABASE_URL: dbUrl,
    NATS_URL: natsUrl,
    BACKUP_DIR: backupDir,
    OPS_SCHEDULE_BACKUP: 'off',
    OPS_SCHEDULE_VERIFY: 'off',
    OPS_SCHEDULE_MAINTENANCE: 'off',
    OPS_SCHEDULE_PARTITIONS: 'off',
    OPS_SCHEDULE_RETENTION: 'off',
    OPS_JOB_HEARTBEAT_MS: '500',
    OPS_FENCE_INGEST_INSTANCES: '1',
    // the drill restores into the live database, its safety copy and a scratch target
    OPS_RESTORE_TARGETS: `${dbName}_*`,
    OPS_REPLAY_MARGIN_MS: '60000',
    RESTORE_JOBS: '2',
  };
  const ingest = await startService('ingest', {
    DATABASE_URL: dbUrl,
    NATS_URL: natsUrl,
    INGEST_BATCH_TIME_MS: '20',
    INGEST_ACK_WAIT_MS: '5000',
  });
  let ops = await startService('ops', opsEnv);

  // 1. restore over the live database while writers run ------------------------------------
  const writerSql = createSql({ url: dbUrl, applicationName: 'drill-writer', max: 1, connectTimeoutS: 2 });
  const confirmedWrites: number[] = [];
  const confirmedEvents = new Set<string>();
  // published and acked by JetStream: these must reach the live database (HTTP writes need not:
  // one confirmed between the backup and the fence is in the safety backup only)
  const streamed = new Set<string>();
  let traffic = true;
  let seq = 0;
  const writer = (async () => {
    for (let n = 1; traffic; n++) {
      try {
        await writerSql`insert into drill_writes (id) values (${n})`;
        confirmedWrites.push(n);
      } catch {
        // not confirmed: read-only during the fence, or the connection ended by the swap
      }
      await sleep(50);
    }
  })();
  const publisher = createPublisher({ nc, maxInFlight: 64, retries: 2, ackTimeoutMs: 2000 });
  const streamer = (async () => {
    while (traffic) {
      const batch = Array.from({ length: 10 }, () => joinEvent(seq++));
      const r = await publisher.publishAll(batch);
      const failed = new Set(r.failed.map((f) => f.id));
      for (const e of batch) {
        if (failed.has(e.id)) continue;
        confirmedEvents.add(e.id);
        streamed.add(e.id);
      }
      await sleep(50);
    }
  })();
  const poster = (async () => {
    while (traffic) {
      const batch = Array.from({ length: 5 }, () => joinEvent(seq++));
      try {
        const res = await fetch(`${ingest.url}/v1/events`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify(batch),
        });
        if (res.ok) {
          const body = (await res.json()) as { results: { id: string; status: string }[] };
          for (const r of body.results) if (r.status !== 'rejected') confirmedEvents.add(r.id);
        }
      } catch {
        // not confirmed
      }
      await sleep(100);
    }
  })();
  await sleep(TRAFFIC_MS);
  const backupId = await start(ops.url, '/v1/backups');
  const backupJob = await jobWhen(ops.url, backupId, () => false);
  if (backupJob.status !== 'succeeded') throw new Error(`backup ${backupJob.status}: ${backupJob.error}`);
  const backup = (backupJob.result as { backup: { id: string } }).backup;
  log(`backup ${backup.id} taken; writers keep going`);
  await sleep(TRAFFIC_MS);
  const restoreId = await start(ops.url, '/v1/restores', {
    backupId: backup.id,
    target: dbName,
    confirm: dbName,
  });
  const restoreJob = await jobEnd(nc, restoreId);
  log(`restore ${restoreJob.status}${restoreJob.error ? `: ${restoreJob.error}` : ''}`);
  await sleep(TRAFFIC_MS / 2);
  traffic = false;
  await Promise.all([writer, streamer, poster]);
  await writerSql.end({ timeout: 5 });
  const restoreResult = (restoreJob.result ?? {}) as {
    safetyBackupId?: string;
    replay?: { replayed: number; already_present: number; beyond_retention: boolean };
  };
  report.restore_status = restoreJob.status;

  const liveSql = createSql({ url: dbUrl, applicationName: 'drill-check', max: 1, statementTimeoutMs: 0 });
  // ingest catches up on what waited in JetStream during the pause
  await waitUntil(
    'ingest to store the published events',
    async () => {
      const ids = await storedEventIds(liveSql);
      return [...streamed].every((id) => ids.has(id)) ? true : undefined;
    },
    60_000,
  ).catch(() => log('not every published event reached the live database; counting the missing ones'));
  const liveWrites = new Set(
    (await liveSql<{ id: string }[]>`select id from drill_writes`).map((r) => Number(r.id)),
  );
  const liveEvents = await storedEventIds(liveSql);
  await liveSql.end();
  let safetyWrites = new Set<number>();
  let safetyEvents = new Set<string>();
  if (restoreResult.safetyBackupId) {
    const safetyDb = `${dbName}_safety`;
    extraDatabases.push(safetyDb);
    const id = await start(ops.url, '/v1/restores', {
      backupId: restoreResult.safetyBackupId,
      target: safetyDb,
    });
    const job = await jobWhen(ops.url, id, () => false);
    if (job.status !== 'succeeded') throw new Error(`restoring the safety backup: ${job.error}`);
    const safetySql = createSql({
      url: withDatabase(serverUrl, safetyDb),
      applicationName: 'drill-check',
      max: 1,
    });
    safetyWrites = new Set(
      (await safetySql<{ id: string }[]>`select id from drill_writes`).map((r) => Number(r.id)),
    );
    safetyEvents = await storedEventIds(safetySql);
    await safetySql.end();
  }
  const lostWrites = confirmedWrites.filter((n) => !liveWrites.has(n) && !safetyWrites.has(n));
  const lostEvents = [...confirmedEvents].filter((id) => !liveEvents.has(id) && !safetyEvents.has(id));
  report.restore_writes_confirmed = confirmedWrites.length + confirmedEvents.size;
  report.restore_writes_lost = lostWrites.length + lostEvents.length;
  report.restore_sql_writes = { confirmed: confirmedWrites.length, lost: lostWrites.length };
  report.restore_events = {
    confirmed: confirmedEvents.size,
    lost: lostEvents.length,
    published_not_in_live: [...streamed].filter((id) => !liveEvents.has(id)).length,
  };
  report.replayed = restoreResult.replay?.replayed ?? null;
  report.already_present = restoreResult.replay?.already_present ?? null;
  report.beyond_retention = restoreResult.replay?.beyond_retention ?? null;
  log(
    `restore: ${JSON.stringify({ lostWrites: lostWrites.length, lostEvents: lostEvents.length, replay: restoreResult.replay })}`,
  );

  // 2. a full disk --------------------------------------------------------------------------
  const diskDir = await tinyFs(4 * 1024 * 1024);
  if (diskDir) {
    const diskOps = await startService('ops', { ...opsEnv, BACKUP_DIR: diskDir });
    // an earlier backup with a tiny size ratio: the estimate passes, the write runs out of space
    const fakeId = '20200101T000000Z-0000d15c';
    await writeFile(
      join(diskDir, `${fakeId}.json`),
      JSON.stringify({
        id: fakeId,
        file: `${fakeId}.dump`,
        database: dbName,
        kind: 'regular',
        compression: 6,
        tables: {},
        totalRows: 0,
        sizeBytes: 1,
        sha256: '0'.repeat(64),
        createdAt: '2020-01-01T00:00:00.000Z',
        databaseSizeBytes: 1_000_000_000,
      }),
    );
    const midWrite = await jobWhen(diskOps.url, await start(diskOps.url, '/v1/backups'), () => false);
    await rm(join(diskDir, `${fakeId}.json`));
    const refused = await jobWhen(diskOps.url, await start(diskOps.url, '/v1/backups'), () => false);
    const alive = diskOps.child.exitCode === null && (await fetch(`${diskOps.url}/health`)).ok;
    report.disk_full = {
      mid_write: { status: midWrite.status, error: midWrite.error },
      pre_check: { status: refused.status, error: refused.error },
      files_left: (await readdir(diskDir)).length,
    };
    report.disk_full_process_alive =
      alive &&
      midWrite.status === 'failed' &&
      /ENOSPC/.test(midWrite.error ?? '') &&
      refused.status === 'failed';
    await diskOps.stop();
  } else {
    report.disk_full_process_alive = null;
  }

  // 3. a stalled S3 endpoint, then a cancel --------------------------------------------------
  const s3Dir = await tempDir('s3');
  const s3Port = await freePort();
  const s3 = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import S3rver from 's3rver';
       await new S3rver({ address: '127.0.0.1', port: ${s3Port}, silent: true, directory: ${JSON.stringify(s3Dir)},
                          configureBuckets: [{ name: 'backups' }] }).run();
       process.stdout.write('ready\\n');`,
    ],
    { cwd: join(root, 'apps', 'ops'), stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(s3);
  await once(s3.stdout!, 'data');
  const s3BackupDir = await tempDir('s3backups');
  const s3Ops = await startService('ops', {
    ...opsEnv,
    BACKUP_DIR: s3BackupDir,
    OPS_S3_BUCKET: 'backups',
    OPS_S3_ENDPOINT: `http://127.0.0.1:${s3Port}`,
    OPS_S3_FORCE_PATH_STYLE: 'true',
    OPS_S3_STALL_TIMEOUT_MS: '600000',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
  });
  s3.kill('SIGSTOP');
  const s3JobId = await start(s3Ops.url, '/v1/backups');
  await jobWhen(s3Ops.url, s3JobId, (j) => j.progress.message === 'copying off-site');
  await sleep(500);
  const cancelStarted = performance.now();
  const cancel = await call(s3Ops.url, 'POST', `/v1/jobs/${s3JobId}/cancel`);
  report.cancel_ms = Math.round(performance.now() - cancelStarted);
  const s3Job = await jobWhen(s3Ops.url, s3JobId, () => false);
  report.s3_stall = {
    cancel_status: cancel.status,
    cancel_to_end_ms: Math.round(performance.now() - cancelStarted),
    job: s3Job.status,
    error: s3Job.error,
    local_backup_kept: (await readdir(s3BackupDir)).some((f) => f.endsWith('.dump')),
  };
  s3.kill('SIGCONT');
  s3.kill('SIGTERM');
  await s3Ops.stop();

  // 4. kill -9 during backup, verify and restore ----------------------------------------------
  const scratchNames: string[] = [];
  const kills: Record<string, string> = {};
  const killDuring = async (what: string, id: string, when: (j: JobView) => boolean) => {
    const job = await jobWhen(ops.url, id, when);
    if (job.status !== 'running') {
      kills[what] = `missed (${job.status})`;
      return;
    }
    const name = /(sw_(verify|restore)_[a-z0-9_]+)/.exec(job.progress.message ?? '')?.[1];
    if (name) scratchNames.push(name);
    await ops.kill9();
    kills[what] = `killed at ${job.progress.percent}%`;
    ops = await startService('ops', opsEnv);
    const after = await jobWhen(ops.url, id, () => false);
    kills[what] += `, then ${after.status}: ${after.error}`;
  };
  await killDuring('backup', await start(ops.url, '/v1/backups'), (j) => j.progress.percent >= 5);
  await killDuring('verify', await start(ops.url, `/v1/backups/${backup.id}/verify`), (j) =>
    /sw_verify_/.test(j.progress.message ?? ''),
  );
  const killTarget = `${dbName}_k`;
  extraDatabases.push(killTarget);
  await killDuring(
    'restore',
    await start(ops.url, '/v1/restores', { backupId: backup.id, target: killTarget }),
    (j) => /sw_restore_/.test(j.progress.message ?? ''),
  );
  report.kills = kills;
  const [{ n: leftoverDbs }] = await admin<{ n: number }[]>`
    select count(*)::int as n from pg_database where datname = any(${scratchNames}::text[])
  `;
  report.leftover_databases = leftoverDbs;
  report.scratch_databases_seen = scratchNames.length;

  // 5. a broken manifest ----------------------------------------------------------------------
  await writeFile(
    join(backupDir, '20250101T000000Z-0badf00d.json'),
    '{"id": "20250101T000000Z-0badf00d", "file": ',
  );
  const listing = await call(ops.url, 'GET', '/v1/backups');
  const health = await call(ops.url, 'GET', '/v1/database/health');
  const metrics = await call(ops.url, 'GET', '/metrics');
  const afterBroken = await jobWhen(ops.url, await start(ops.url, '/v1/backups'), () => false);
  report.broken_manifest = {
    list: listing.status,
    health: health.status,
    metrics: metrics.status,
    new_backup: afterBroken.status,
  };

  report.leftover_files = await partials([backupDir, s3BackupDir, ...mounts]);
  report.http_500s = http500s;
  await ops.stop();
  await ingest.stop();
  await nc.close();
} catch (error) {
  report.error = (error as Error).message;
  log(`failed: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
} finally {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const dir of mounts) await execFileAsync('umount', ['-l', dir]).catch(() => {});
  for (const name of [dbName, ...extraDatabases])
    await admin.unsafe(`drop database if exists "${name}" with (force)`).catch(() => {});
  await admin.end({ timeout: 5 });
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true }).catch(() => {});
}

const safe =
  report.restore_writes_lost === 0 &&
  report.disk_full_process_alive === true &&
  typeof report.cancel_ms === 'number' &&
  report.leftover_files === 0 &&
  report.leftover_databases === 0 &&
  report.http_500s === 0;
const met = safe && (report.cancel_ms as number) <= 1000;
finishDrill(report, {
  headline: [
    'restore_writes_confirmed',
    'restore_writes_lost',
    'replayed',
    'disk_full_process_alive',
    'cancel_ms',
    'leftover_files',
    'leftover_databases',
    'http_500s',
  ],
  safe,
  met,
  quick: QUICK,
});
