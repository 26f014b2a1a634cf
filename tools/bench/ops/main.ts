/**
 * Ops benchmark: on an event log of ≥ 2,000,000 rows (200,000 with --quick), our backup job
 * against a bare `pg_dump -Fc` of the same database, the verify job (restore into a scratch
 * database, row counts, amcheck), and the health report. Prints one JSON line last.
 *
 *   npm run bench:ops            # full size
 *   npm run bench:ops -- --quick # under a minute
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createSql, migrate, partitionUpkeep, withDatabase } from '@spywatcher/db';
import { DEFAULT_NATS_NAMES } from '@spywatcher/events';
import { MIGRATIONS_DIR } from '@spywatcher/migrator/migrations';
import type { BackupManifest } from '@spywatcher/ops/catalogue';
import { opsEnv } from '@spywatcher/ops/config';
import { pgEnv } from '@spywatcher/ops/pg-tools';
import { createOps } from '@spywatcher/ops/setup';
import { loadConfig } from '@spywatcher/service';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rows: { type: 'string' },
    // leave the generated database in place (its name goes to stderr) to compare by hand
    keep: { type: 'boolean', default: false },
  },
});
const rows = values.rows ? Number(values.rows) : values.quick ? 200_000 : 2_000_000;
const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const adminUrl = withDatabase(serverUrl, 'postgres');
const dbName = `sw_bench_ops_${randomBytes(4).toString('hex')}`;
const dbUrl = withDatabase(serverUrl, dbName);
const log = (line: string) => process.stderr.write(`${line}\n`);
const seconds = (ms: number) => Math.round(ms) / 1000;

// share of the rows per table, roughly what the bot produces
const MIX: [string, number, string][] = [
  [
    'message_events',
    0.4,
    `insert into message_events (id, occurred_at, message_id, user_id, username, channel_id, channel_name, guild_id, content)
     select gen_random_uuid(), now() + (i % 21) * interval '1 day' + (i % 86400) * interval '1 second', 'm' || i,
            'u' || (i % 5000), 'user' || (i % 5000), 'c' || (i % 50), 'channel-' || (i % 50), 'g' || (i % 20),
            'message ' || i || ' about ' || (array['cats','dogs','deploys','the raid tonight','café au lait','https://example.com/x'])[1 + i % 6]
     from generate_series($1::bigint, $2::bigint) i`,
  ],
  [
    'presence_events',
    0.3,
    `insert into presence_events (id, occurred_at, user_id, username, guild_id, clients, status)
     select gen_random_uuid(), now() + (i % 21) * interval '1 day' + (i % 86400) * interval '1 second',
            'u' || (i % 5000), 'user' || (i % 5000), 'g' || (i % 20),
            case i % 3 when 0 then array['desktop'] when 1 then array['mobile'] else array['web', 'mobile'] end, (array['online','idle','dnd','offline'])[1 + i % 4]
     from generate_series($1::bigint, $2::bigint) i`,
  ],
  [
    'typing_events',
    0.15,
    `insert into typing_events (id, occurred_at, user_id, username, channel_id, channel_name, guild_id)
     select gen_random_uuid(), now() + (i % 21) * interval '1 day' + (i % 86400) * interval '1 second',
            'u' || (i % 5000), 'user' || (i % 5000), 'c' || (i % 50), 'channel-' || (i % 50), 'g' || (i % 20)
     from generate_series($1::bigint, $2::bigint) i`,
  ],
  [
    'join_events',
    0.05,
    `insert into join_events (id, occurred_at, user_id, username, guild_id, account_age_days)
     select gen_random_uuid(), now() + (i % 21) * interval '1 day', 'u' || i, 'user' || i, 'g' || (i % 20), i % 3000
     from generate_series($1::bigint, $2::bigint) i`,
  ],
  [
    'reaction_time_events',
    0.05,
    `insert into reaction_time_events (id, occurred_at, observer_id, observer_name, actor_id, actor_name, channel_id, guild_id, delta_ms)
     select gen_random_uuid(), now() + (i % 21) * interval '1 day', 'u' || (i % 5000), 'user', 'u' || (i % 4999), 'actor',
            'c' || (i % 50), 'g' || (i % 20), i % 60000
     from generate_series($1::bigint, $2::bigint) i`,
  ],
  [
    'role_change_events',
    0.05,
    `insert into role_change_events (id, occurred_at, user_id, username, guild_id, added_roles, removed_roles)
     select gen_random_uuid(), now() + (i % 21) * interval '1 day', 'u' || (i % 5000), 'user', 'g' || (i % 20), array['r' || (i % 9)], '{}'
     from generate_series($1::bigint, $2::bigint) i`,
  ],
];

/**
 * CPU seconds of this process plus its reaped children (pg_dump runs as a child of this process
 * in both the bare run and the job), so the comparison holds on a machine busy with other work.
 * PostgreSQL's side (the job's row counts in the dump's snapshot) is not included.
 */
async function cpuSeconds(): Promise<number> {
  const stat = (await readFile('/proc/self/stat', 'utf8')).split(') ')[1]!.split(' ');
  const ticks = 100; // USER_HZ on Linux
  const children = (Number(stat[13]) + Number(stat[14])) / ticks; // cutime, cstime
  const own = process.cpuUsage();
  return children + (own.user + own.system) / 1e6;
}

async function cpuTimed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const before = await cpuSeconds();
  const result = await work();
  return [result, (await cpuSeconds()) - before];
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await work();
  return [result, performance.now() - started];
}

function bareDump(file: string): Promise<void> {
  const { env, database } = pgEnv(dbUrl);
  return new Promise((resolve, reject) => {
    const child = spawn(
      'pg_dump',
      ['--format=custom', '--no-password', `--file=${file}`, `--dbname=${database}`],
      {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`pg_dump exited ${code}`))));
  });
}

const admin = createSql({ url: adminUrl, applicationName: 'bench-ops', max: 1 });
await admin.unsafe(`create database "${dbName}"`);
const sql = createSql({ url: dbUrl, applicationName: 'bench-ops', max: 4, statementTimeoutMs: 0 });
const dir = await mkdtemp(join(tmpdir(), 'sw-bench-ops-'));
try {
  log(`database ${dbName}: migrating and loading ${rows} event rows`);
  await migrate({ sql, dir: MIGRATIONS_DIR });
  await partitionUpkeep(sql, { ahead: 3, skipRetention: true });
  const [, loadMs] = await timed(async () => {
    const chunk = 200_000;
    for (const [table, share, insert] of MIX) {
      const n = Math.round(rows * share);
      for (let from = 1; from <= n; from += chunk) {
        await sql.unsafe(insert, [from, Math.min(n, from + chunk - 1)]);
      }
      log(`  ${table}: ${n} rows`);
    }
    await sql`vacuum analyze`;
  });
  const [{ n: loaded }] = (await sql
    .unsafe(MIX.map(([t]) => `select count(*)::bigint as n from ${t}`).join(' union all ') + '')
    .then((r) => [{ n: r.reduce((a, x) => a + Number(x.n), 0) }])) as [{ n: number }];
  log(`loaded ${loaded} rows in ${seconds(loadMs)} s`);

  const config = {
    ...loadConfig(opsEnv, {
      BACKUP_DIR: join(dir, 'backups'),
      OPS_SCHEDULE_BACKUP: 'off',
      OPS_SCHEDULE_VERIFY: 'off',
      OPS_SCHEDULE_MAINTENANCE: 'off',
      OPS_SCHEDULE_PARTITIONS: 'off',
      OPS_SCHEDULE_RETENTION: 'off',
      BACKUP_KEEP_COUNT: '0',
    }),
    DATABASE_URL: dbUrl,
  };
  const ops = createOps(config, { sql, names: DEFAULT_NATS_NAMES });
  await ops.catalogue.ensureDir();

  // alternate the two so cache warmth and noisy neighbours hit both alike; keep the best of each
  const bare: number[] = [];
  const ours: number[] = [];
  const bareCpu: number[] = [];
  const oursCpu: number[] = [];
  let manifest: BackupManifest | undefined;
  let bareBytes = 0;
  for (let round = 0; round < 3; round++) {
    const file = join(dir, `bare-${round}.dump`);
    const [[, b], bc] = await cpuTimed(() => timed(() => bareDump(file)));
    bare.push(b);
    bareCpu.push(bc);
    bareBytes = (await stat(file)).size;
    await rm(file);
    const [[job, o], oc] = await cpuTimed(() => timed(async () => (await ops.startBackup('cli')).done));
    if (job.status !== 'succeeded') throw new Error(`backup job ${job.status}: ${job.error}`);
    ours.push(o);
    oursCpu.push(oc);
    manifest = (job.result as { backup: BackupManifest }).backup;
    log(`round ${round + 1}: pg_dump ${seconds(b)} s, backup job ${seconds(o)} s`);
  }
  const pgDumpMs = Math.min(...bare);
  const backupMs = Math.min(...ours);

  const [verify, verifyMs] = await timed(async () => (await ops.startVerify('cli', manifest!.id)).done);
  if (verify.status !== 'succeeded') throw new Error(`verify job ${verify.status}: ${verify.error}`);
  log(`verify ${seconds(verifyMs)} s`);

  const healthRuns: number[] = [];
  let findings = 0;
  for (let i = 0; i < 5; i++) {
    const [report, ms] = await timed(() => ops.health());
    healthRuns.push(ms);
    findings = report.findings.length;
  }
  healthRuns.sort((a, b) => a - b);
  const healthMs = healthRuns[Math.floor(healthRuns.length / 2)]!;
  log(`health report median ${Math.round(healthMs)} ms (${findings} findings)`);
  await ops.runner.stop();

  console.log(
    JSON.stringify({
      rows: loaded,
      quick: values.quick,
      backup_s: seconds(backupMs),
      pg_dump_s: seconds(pgDumpMs),
      backup_overhead: Math.round((backupMs / pgDumpMs - 1) * 1000) / 1000,
      verify_s: seconds(verifyMs),
      health_ms: Math.round(healthMs),
      backup_bytes: manifest!.sizeBytes,
      pg_dump_bytes: bareBytes,
      load_s: seconds(loadMs),
      pg_dump_runs_s: bare.map(seconds),
      backup_runs_s: ours.map(seconds),
      // CPU of this process and pg_dump: the client-side cost, whatever else the machine runs
      pg_dump_cpu_s: Math.round(Math.min(...bareCpu) * 1000) / 1000,
      backup_cpu_s: Math.round(Math.min(...oursCpu) * 1000) / 1000,
      backup_cpu_overhead: Math.round((Math.min(...oursCpu) / Math.min(...bareCpu) - 1) * 1000) / 1000,
    }),
  );
} finally {
  await sql.end({ timeout: 5 });
  if (values.keep) log(`kept database ${dbName}`);
  else await admin.unsafe(`drop database if exists "${dbName}" with (force)`);
  await admin.end();
  await rm(dir, { recursive: true, force: true });
}
