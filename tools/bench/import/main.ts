/**
 * Legacy SQLite import benchmark: our import (conversion, partitions, every index, the
 * message tsvector, verification) against pgloader loading the same file into plain tables,
 * measured in the same run on the same machine. Last line: one JSON object.
 *
 *   npm run bench:import              1,000,000 event rows
 *   npm run bench:import -- --quick   150,000 rows (under a minute)
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createSql, MIGRATIONS_DIR, migrate, withDatabase } from '@spywatcher/db';
import { writeLegacyFixture } from '../../legacy-fixture/fixture.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rows: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const rows = Number(values.rows ?? (values.quick ? 150_000 : 1_000_000));
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

/** Runs a command, polling the peak resident set (VmHWM) of the process while it runs. */
function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; seconds: number; peakKb: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
      resolve({ code: code ?? 1, seconds: (performance.now() - started) / 1000, peakKb, stdout, stderr });
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

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-import-'));
  const file = join(dir, 'legacy.sqlite');
  say(`generating a legacy SpyWatcher SQLite file with ${rows} event rows (12 months of history)`);
  const fixture = writeLegacyFixture({ path: file, rows, months: 12, seed: 7, textDates: false });
  say(`  ${fixture.total} rows in ${Object.keys(fixture.tables).length} tables`);
  ensurePgloader();
  const suffix = Date.now().toString(36);
  const ourDb = `bench_import_${suffix}`;
  const plainDb = `bench_pgloader_${suffix}`;
  try {
    const ourUrl = await createDatabase(ourDb, true);
    say('our import (nx run migrator:import-sqlite) with verification ...');
    const ours = await run(
      process.execPath,
      // the same command as `nx run migrator:import-sqlite` (bounded heap, see apps/migrator/README.md)
      ['--max-old-space-size=160', join(root, 'apps/migrator/src/import-cli.ts'), '--from', file, '--json'],
      { ...process.env, DATABASE_URL: ourUrl },
    );
    const lastLine = ours.stdout.trim().split('\n').pop() ?? '{}';
    const report = JSON.parse(lastLine.startsWith('{') ? lastLine : '{}') as {
      verified?: boolean;
      rows?: number;
      exitCode?: number;
      phases?: Record<string, number>;
      cpuSeconds?: number;
    };
    if (ours.code !== 0) say(`our import exited ${ours.code}:\n${ours.stderr.slice(-2000)}`);
    say(
      `  ${ours.seconds.toFixed(1)} s, peak RSS ${(ours.peakKb / 1024).toFixed(0)} MB, verified ${report.verified}`,
    );

    const plainUrl = await createDatabase(plainDb, false);
    const load = join(dir, 'legacy.load');
    writeFileSync(
      load,
      `LOAD DATABASE
  FROM sqlite://${file}
  INTO ${plainUrl}
  WITH include drop, create tables, create indexes, reset sequences
  EXCLUDING TABLE NAMES LIKE '_prisma_migrations'
  CAST type datetime to bigint drop default drop typemod using integer-to-string;
`,
    );
    say('pgloader into a plain database (dates as numbers, no partitions, no tsvector, no verification) ...');
    const pg = await run('pgloader', ['--on-error-stop', load], process.env);
    if (pg.code !== 0) say(`pgloader exited ${pg.code}:\n${(pg.stdout + pg.stderr).slice(-2000)}`);
    const pgRows = await countPgloaderRows(plainUrl);
    say(`  ${pg.seconds.toFixed(1)} s, ${pgRows} rows loaded`);

    const importPerS = Math.round(fixture.total / ours.seconds);
    const pgloaderPerS = Math.round(pgRows / pg.seconds);
    process.stdout.write(
      `${JSON.stringify({
        rows: fixture.total,
        import_seconds: Math.round(ours.seconds * 100) / 100,
        import_per_s: importPerS,
        pgloader_seconds: Math.round(pg.seconds * 100) / 100,
        pgloader_rows: pgRows,
        pgloader_per_s: pgloaderPerS,
        ratio: pgloaderPerS > 0 ? Math.round((importPerS / pgloaderPerS) * 100) / 100 : null,
        peak_rss_mb: Math.round(ours.peakKb / 1024),
        verified: report.verified === true,
        import_phases_s: report.phases,
        import_cpu_s: report.cpuSeconds,
        import_exit_code: ours.code,
        pgloader_exit_code: pg.code,
      })}\n`,
    );
  } finally {
    if (!values.keep) {
      await dropDatabase(ourDb);
      await dropDatabase(plainDb);
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

await main();
