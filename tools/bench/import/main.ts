/**
 * Legacy SQLite import benchmark: our import (conversion, partitions, every index, the
 * message tsvector, verification) against pgloader loading the same file into plain tables,
 * measured in the same run on the same machine. Last line: one JSON object.
 *
 *   npm run bench:import              1,000,000 event rows, three pairs (the median pair counts)
 *   npm run bench:import -- --quick   150,000 rows, one pair (under a minute)
 *   options: --rows N, --pairs N, --keep (leave the databases and the file)
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createSql, MIGRATIONS_DIR, migrate, withDatabase } from '@spywatcher/db';
import { writeLegacyFixture } from '../../legacy-fixture/fixture.ts';
import { CpuMeter } from './cpu.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rows: { type: 'string' },
    keep: { type: 'boolean', default: false },
    pairs: { type: 'string' },
  },
});
const rows = Number(values.rows ?? (values.quick ? 150_000 : 1_000_000));
/** Import/pgloader pairs, each run back to back; the figure is the median pair's ratio. */
const pairs_ = Number(values.pairs ?? (values.quick ? 1 : 3));
const baseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const adminUrl = withDatabase(baseUrl, 'postgres');
const root = new URL('../../../', import.meta.url).pathname;
const say = (line: string) => process.stderr.write(`${line}\n`);

function ensurePgloader(): void {
  try {
    execFileSync('pgloader', ['--version'], { stdio: 'ignore' });
  } catch {
    say('pgloader is not installed: installing the Debian package with apt-get (needs root)');
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'pgloader'], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  }
}

async function createDatabase(name: string, migrated: boolean): Promise<string> {
  const admin = createSql({ url: adminUrl, applicationName: 'bench-import', max: 1 });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(baseUrl, name);
  if (migrated) {
    const sql = createSql({ url, applicationName: 'bench-import', max: 2 });
    try {
      await migrate({ sql, dir: MIGRATIONS_DIR });
    } finally {
      await sql.end();
    }
  }
  return url;
}

async function dropDatabase(name: string): Promise<void> {
  const admin = createSql({ url: adminUrl, applicationName: 'bench-import', max: 1 });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.end();
  }
}

/** Runs a command, polling the peak resident set (VmHWM) of the process and the CPU time of it
 * and of the target database's backends while it runs. */
function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  database: string,
): Promise<{
  code: number;
  seconds: number;
  peakKb: number;
  cpu: { command: number; postgres: number };
  stdout: string;
  stderr: string;
}> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const meter = new CpuMeter(database);
    meter.start(child.pid!);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    let peakKb = 0;
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peakKb = Math.max(peakKb, Number(m[1]));
      } catch {}
    }, 50);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(poll);
      const cpu = meter.stop();
      resolve({
        code: code ?? 1,
        seconds: (performance.now() - started) / 1000,
        peakKb,
        cpu,
        stdout,
        stderr,
      });
    });
  });
}

const PGLOADER_TABLES = [
  'PresenceEvent',
  'TypingEvent',
  'MessageEvent',
  'JoinEvent',
  'DeletedMessageEvent',
  'ReactionTime',
  'RoleChangeEvent',
  'User',
  'Guild',
  'BlockedIP',
  'BannedUser',
];

async function countPgloaderRows(url: string): Promise<number> {
  const sql = createSql({ url, applicationName: 'bench-import', max: 1 });
  try {
    let total = 0;
    for (const t of PGLOADER_TABLES) {
      // pgloader lower-cases and snake-cases identifiers; find the table whatever it chose.
      const [found] = await sql<{ name: string }[]>`
        select quote_ident(table_schema) || '.' || quote_ident(table_name) as name from information_schema.tables
        where lower(replace(table_name, '_', '')) = ${t.toLowerCase()} and table_schema not in ('pg_catalog', 'information_schema')
      `;
      if (!found) continue;
      const [c] = await sql.unsafe<{ n: string }[]>(`select count(*)::text as n from ${found.name}`);
      total += Number(c!.n);
    }
    return total;
  } finally {
    await sql.end();
  }
}

interface ImportReportLine {
  verified?: boolean;
  exitCode?: number;
  phases?: Record<string, number>;
  cpuSeconds?: number;
}

/** Our import into a fresh migrated database: the nx target's command, with verification. */
async function ourImport(file: string, name: string) {
  const url = await createDatabase(name, true);
  const ours = await run(
    process.execPath,
    // the same command as `nx run migrator:import-sqlite` (bounded heap, see apps/migrator/README.md)
    ['--max-old-space-size=160', join(root, 'apps/migrator/src/import-cli.ts'), '--from', file, '--json'],
    // with a key, as in production: the users' OAuth tokens are encrypted on the way in
    {
      ...process.env,
      DATABASE_URL: url,
      TOKEN_ENCRYPTION_KEYS: `bench:${randomBytes(32).toString('base64')}`,
    },
    name,
  );
  const lastLine = ours.stdout.trim().split('\n').pop() ?? '{}';
  const report = JSON.parse(lastLine.startsWith('{') ? lastLine : '{}') as ImportReportLine;
  if (ours.code !== 0) say(`our import exited ${ours.code}:\n${ours.stderr.slice(-2000)}`);
  say(
    `  import: ${ours.seconds.toFixed(1)} s, CPU ${ours.cpu.command.toFixed(1)} s + PostgreSQL ${ours.cpu.postgres.toFixed(1)} s, peak RSS ${(ours.peakKb / 1024).toFixed(0)} MB, verified ${report.verified}`,
  );
  return { ...ours, report };
}

/** pgloader loading the same file into a plain database (dates as numbers, SQLite's keys). */
async function plainLoad(file: string, dir: string, name: string) {
  const url = await createDatabase(name, false);
  const load = join(dir, `${name}.load`);
  writeFileSync(
    load,
    `LOAD DATABASE
  FROM sqlite://${file}
  INTO ${url}
  WITH include drop, create tables, create indexes, reset sequences
  EXCLUDING TABLE NAMES LIKE '_prisma_migrations'
  CAST type datetime to bigint drop default drop typemod using integer-to-string;
`,
  );
  const pg = await run('pgloader', ['--on-error-stop', load], process.env, name);
  if (pg.code !== 0) say(`pgloader exited ${pg.code}:\n${(pg.stdout + pg.stderr).slice(-2000)}`);
  const loaded = await countPgloaderRows(url);
  say(
    `  pgloader: ${pg.seconds.toFixed(1)} s, CPU ${pg.cpu.command.toFixed(1)} s + PostgreSQL ${pg.cpu.postgres.toFixed(1)} s, ${loaded} rows`,
  );
  return { ...pg, loaded };
}

const round = (x: number, places = 2) => Math.round(x * 10 ** places) / 10 ** places;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-import-'));
  const file = join(dir, 'legacy.sqlite');
  say(`generating a legacy SpyWatcher SQLite file with ${rows} event rows (12 months of history)`);
  const fixture = writeLegacyFixture({ path: file, rows, months: 12, seed: 7, textDates: false });
  say(`  ${fixture.total} rows in ${Object.keys(fixture.tables).length} tables`);
  ensurePgloader();
  const suffix = Date.now().toString(36);
  const created: string[] = [];
  const loadBefore = loadavg();
  const pairs = [];
  try {
    for (let i = 1; i <= pairs_; i++) {
      say(`pair ${i} of ${pairs_}: our import, then pgloader, back to back`);
      const ourDb = `bench_import_${suffix}_${i}`;
      const plainDb = `bench_pgloader_${suffix}_${i}`;
      created.push(ourDb, plainDb);
      const ours = await ourImport(file, ourDb);
      const pg = await plainLoad(file, dir, plainDb);
      const importPerS = fixture.total / ours.seconds;
      const pgloaderPerS = pg.loaded / pg.seconds;
      pairs.push({
        import_seconds: round(ours.seconds),
        pgloader_seconds: round(pg.seconds),
        ratio: round(importPerS / pgloaderPerS),
        import_cpu_s: round(ours.cpu.command, 1),
        import_pg_cpu_s: round(ours.cpu.postgres, 1),
        pgloader_cpu_s: round(pg.cpu.command, 1),
        pgloader_pg_cpu_s: round(pg.cpu.postgres, 1),
        // CPU seconds pgloader's load took per CPU second ours took, both with their PostgreSQL
        cpu_ratio: round((pg.cpu.command + pg.cpu.postgres) / (ours.cpu.command + ours.cpu.postgres)),
        peak_rss_mb: Math.round(ours.peakKb / 1024),
        verified: ours.report.verified === true,
        import_exit_code: ours.code,
        pgloader_exit_code: pg.code,
        pgloader_rows: pg.loaded,
        import_phases_s: ours.report.phases,
        load_after: round(loadavg()[0]!),
      });
      if (!values.keep) {
        await dropDatabase(ourDb);
        await dropDatabase(plainDb);
      }
    }
    const median = [...pairs].sort((a, b) => a.ratio - b.ratio)[Math.floor(pairs.length / 2)]!;
    process.stdout.write(
      `${JSON.stringify({
        rows: fixture.total,
        pairs: pairs.length,
        ratio: median.ratio,
        import_seconds: median.import_seconds,
        pgloader_seconds: median.pgloader_seconds,
        import_per_s: Math.round(fixture.total / median.import_seconds),
        pgloader_per_s: Math.round(median.pgloader_rows / median.pgloader_seconds),
        cpu_ratio: median.cpu_ratio,
        peak_rss_mb: Math.max(...pairs.map((p) => p.peak_rss_mb)),
        verified: pairs.every((p) => p.verified),
        import_phases_s: median.import_phases_s,
        load_before: round(loadBefore[0]!),
        runs: pairs,
      })}\n`,
    );
  } finally {
    if (!values.keep) {
      for (const name of created) await dropDatabase(name);
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

await main();
