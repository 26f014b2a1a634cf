import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat, statfs } from 'node:fs/promises';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createSql, type Sql, withDatabase } from '@spywatcher/db';
import type { BackupCatalogue, BackupManifest, Verification } from './catalogue.ts';
import { newBackupId } from './catalogue.ts';
import type { Scratch } from './job-lease.ts';
import type { JobContext } from './jobs.ts';
import type { Offsite } from './offsite.ts';
import { pgEnv, redactSecrets, runPgTool } from './pg-tools.ts';
import { checkBtreeIndexes, exactRowCounts, quoteIdent } from './tables.ts';

export interface BackupEnv {
  /** Pool on the live database. */
  sql: Sql;
  databaseUrl: string;
  /** Connection to a maintenance database on the same server, for CREATE/DROP DATABASE. */
  adminUrl: string;
  catalogue: BackupCatalogue;
  pgDump: string;
  pgRestore: string;
  /** zlib level for pg_dump -Fc (0-9). */
  compression: number;
  lockWaitTimeoutMs: number;
  restoreJobs: number;
  /**
   * Databases restores may create or replace besides the live one (OPS_RESTORE_TARGETS): names,
   * or prefixes ending in `*`.
   */
  restoreTargets: string[];
  offsite?: Offsite;
  /** Free bytes of the filesystem holding a directory (statfs; replaceable in tests). */
  freeBytes?: (dir: string) => Promise<number>;
}

/** What a backup step needs from its job. */
export type Step = Pick<JobContext, 'progress' | 'signal' | 'track'>;

/** What kind of backup, and for a safety backup which restore made it. */
export interface BackupLabel {
  kind: 'regular' | 'safety';
  label?: string;
  restoreJobId?: string;
}

const execFileAsync = promisify(execFile);
const MIB = 1_048_576;

const versions = new Map<string, Promise<string>>();

/** `pg_dump --version`, asked once per binary and process. */
function toolVersion(binary: string): Promise<string> {
  let version = versions.get(binary);
  if (!version) {
    version = execFileAsync(binary, ['--version'], { timeout: 10_000 }).then(({ stdout }) => stdout.trim());
    version.catch(() => versions.delete(binary));
    versions.set(binary, version);
  }
  return version;
}

/** A pass-through that hashes and counts what goes to the file. */
function hashing(): { stream: Transform; digest: () => { sha256: string; bytes: number } } {
  const hash = createHash('sha256');
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  return { stream, digest: () => ({ sha256: hash.digest('hex'), bytes }) };
}

export async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(
    createReadStream(path),
    new Writable({
      write(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        done();
      },
    }),
    { signal },
  );
  return hash.digest('hex');
}

/** A file-system error as a sentence a person can act on (a full disk above all). */
export function describeFsError(error: unknown, dir: string): string {
  const code = (error as { code?: string }).code;
  const message = (error as Error).message;
  if (code === 'ENOSPC' || /ENOSPC|no space left/i.test(message))
    return `the disk holding BACKUP_DIR (${dir}) is full (ENOSPC); free space or point BACKUP_DIR elsewhere`;
  if (code === 'EDQUOT') return `the disk quota of BACKUP_DIR (${dir}) is exhausted (EDQUOT)`;
  if (code === 'EROFS') return `BACKUP_DIR (${dir}) is on a read-only file system (EROFS)`;
  if (code === 'EACCES' || code === 'EPERM')
    return `no permission to write into BACKUP_DIR (${dir}): ${message}`;
  return message;
}

async function statfsFree(dir: string): Promise<number> {
  const s = await statfs(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/**
 * How many bytes a backup of `database` (now `databaseBytes` large) will need: the size ratio
 * of its newest backup at the same compression (dump bytes per database byte), or 1/2 (1 when
 * uncompressed) without one, plus 20 % and 1 MiB of slack.
 */
export function estimateBackupBytes(
  history: BackupManifest[],
  database: string,
  databaseBytes: number,
  compression: number,
): { bytes: number; ratio: number; basedOn: string | null } {
  const previous = history.find(
    (b) => b.database === database && b.compression === compression && (b.databaseSizeBytes ?? 0) > 0,
  );
  const ratio = previous ? previous.sizeBytes / previous.databaseSizeBytes! : compression > 0 ? 0.5 : 1;
  return { bytes: Math.ceil(databaseBytes * ratio * 1.2) + MIB, ratio, basedOn: previous?.id ?? null };
}

const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;

/** Refuses, before anything is written, a backup that cannot fit in BACKUP_DIR. */
async function checkFreeSpace(env: BackupEnv, database: string, databaseBytes: number): Promise<void> {
  const free = await (env.freeBytes ?? statfsFree)(env.catalogue.dir);
  const need = estimateBackupBytes(await env.catalogue.list(), database, databaseBytes, env.compression);
  if (free < need.bytes) {
    const basis = need.basedOn
      ? `the size ratio ${need.ratio.toFixed(3)} of backup ${need.basedOn}`
      : `a ratio of ${need.ratio} (no earlier backup of ${database} at compression ${env.compression})`;
    throw new Error(
      `not enough free space in BACKUP_DIR (${env.catalogue.dir}): ${mib(free)} free, about ${mib(need.bytes)} needed (database ${database} is ${mib(databaseBytes)}, estimated with ${basis}); nothing was written`,
    );
  }
}

/**
 * pg_dump -Fc of `source` into the catalogue. The dump and the row counts come from one
 * exported snapshot, so the manifest's counts are exactly what the file holds. Output goes to
 * a hidden temporary file (recorded as the job's scratch before it exists) that is fsynced and
 * renamed only when pg_dump succeeded; on any failure it is removed, and the error carries
 * pg_dump's message without passwords. A backup that cannot fit is refused before it starts.
 */
export async function createBackup(
  env: BackupEnv,
  source: { url: string; sql: Sql },
  ctx: Step,
  label: BackupLabel = { kind: 'regular' },
): Promise<BackupManifest> {
  const started = performance.now();
  const id = newBackupId();
  const catalogue = env.catalogue;
  const { password } = pgEnv(source.url);
  let written: BackupManifest;
  const forget = await ctx.track({ kind: 'file', path: catalogue.partialPath(id) });
  try {
    written = await dumpToCatalogue(env, source, ctx, id, label);
    written.durationMs = Math.round(performance.now() - started);
    await catalogue.write(written);
  } catch (error) {
    await rm(catalogue.partialPath(id), { force: true }).catch(() => {});
    await rm(catalogue.dumpPath(id), { force: true }).catch(() => {});
    await rm(catalogue.manifestPath(id), { force: true }).catch(() => {});
    if (ctx.signal.aborted) throw error;
    let message = describeFsError(error, catalogue.dir);
    if (/pg_dump failed/.test(message) && /statement timeout|lock timeout/.test(message)) {
      // pg_dump enforces --lock-wait-timeout with a statement timeout on its LOCK TABLE
      message += ` (a table lock was not granted within BACKUP_LOCK_WAIT_TIMEOUT_MS=${env.lockWaitTimeoutMs}; something holds an exclusive lock)`;
    }
    throw new Error(redactSecrets(message, [password]));
  } finally {
    await forget();
  }
  // the local backup is complete and stays whatever happens to its off-site copy
  if (env.offsite) {
    ctx.progress(95, 'copying off-site');
    try {
      written.offsite = await env.offsite.upload(catalogue.dumpPath(id), written, ctx.signal);
      delete written.offsiteError;
    } catch (error) {
      written.offsiteError = ctx.signal.aborted
        ? 'the off-site copy was cancelled'
        : redactSecrets((error as Error).message, [password]);
    }
    await catalogue.write(written).catch(() => {});
    if (ctx.signal.aborted) {
      throw new Error(`cancelled during the off-site copy; the local backup ${id} is complete and kept`);
    }
  }
  return written;
}

/** The snapshot, the dump and the counts; returns the manifest of the renamed, fsynced file. */
async function dumpToCatalogue(
  env: BackupEnv,
  source: { url: string; sql: Sql },
  ctx: Step,
  id: string,
  label: BackupLabel,
): Promise<BackupManifest> {
  const catalogue = env.catalogue;
  const partial = catalogue.partialPath(id);
  const final = catalogue.dumpPath(id);
  const { database } = pgEnv(source.url);
  await catalogue.ensureDir();
  const pgDumpVersion = await toolVersion(env.pgDump);
  ctx.progress(1, 'taking a snapshot');
  const manifest: BackupManifest = await source.sql.begin(
    'isolation level repeatable read read only',
    async (tx) => {
      // counting a large log can outlast the pool's statement timeout; a lock must not be waited
      // for forever, but longer than pg_dump waits: a count that gave up first would abort this
      // transaction and take the exported snapshot with it before pg_dump has imported it
      const lockTimeout = String(env.lockWaitTimeoutMs + 5000);
      await tx`select set_config('lock_timeout', ${lockTimeout}, true), set_config('statement_timeout', '0', true)`;
      const [meta] = await tx<
        {
          snapshot: string;
          version: string;
          migrations: string | null;
          pid: number;
          at: Date;
          size: string;
        }[]
      >`
        select pg_export_snapshot() as snapshot, current_setting('server_version') as version,
               pg_backend_pid() as pid, to_regclass('schema_migrations')::text as migrations,
               now() as at, pg_database_size(current_database()) as size
      `;
      await checkFreeSpace(env, database, Number(meta!.size));
      let latestMigration: BackupManifest['latestMigration'] = null;
      if (meta!.migrations) {
        const [m] = await tx<{ version: number; name: string }[]>`
          select version, name from schema_migrations order by version desc limit 1
        `;
        if (m) latestMigration = { version: Number(m.version), name: m.name };
      }
      const [{ n: tableTotal } = { n: 0 }] = await tx<{ n: number }[]>`
        select count(*)::int as n from pg_class c join pg_namespace s on s.oid = c.relnamespace
        where c.relkind = 'r' and s.nspname not in ('pg_catalog', 'information_schema') and s.nspname !~ '^pg_'
      `;
      let dumped = 0;
      const hash = hashing();
      const dump = runPgTool(
        env.pgDump,
        [
          '--format=custom',
          `--compress=${env.compression}`,
          `--snapshot=${meta!.snapshot}`,
          `--lock-wait-timeout=${env.lockWaitTimeoutMs}`,
          '--no-password',
          '--verbose',
          `--dbname=${database}`,
        ],
        {
          url: source.url,
          // flush: the file is fsynced before it closes, so the rename publishes durable bytes
          sink: (stdout) =>
            pipeline(
              stdout,
              hash.stream,
              createWriteStream(partial, { flags: 'wx', mode: 0o640, flush: true }),
            ),
          signal: ctx.signal,
          onStderrLine: (line) => {
            const m = /dumping contents of table "([^"]+)"/.exec(line);
            if (m) {
              dumped += 1;
              ctx.progress(5 + (85 * dumped) / Math.max(tableTotal, dumped), `dumped ${m[1]}`);
            }
          },
        },
      );
      // counting runs alongside the dump, in the same snapshot
      const counting = exactRowCounts(tx);
      // handled below, after pg_dump; a rejection meanwhile is not an unhandled one
      counting.catch(() => {});
      const failed = await dump.then(
        () => null,
        (error: unknown) => error,
      );
      if (failed) {
        // the count may wait for the very lock that stopped pg_dump: do not wait for it
        await source.sql`select pg_cancel_backend(${meta!.pid}::int)`.catch(() => {});
        await counting.catch(() => {});
        throw failed;
      }
      const tables = await counting;
      const { sha256, bytes } = hash.digest();
      return {
        id,
        file: `${id}.dump`,
        database,
        kind: label.kind,
        ...(label.label ? { label: label.label } : {}),
        ...(label.restoreJobId ? { restoreJobId: label.restoreJobId } : {}),
        serverVersion: meta!.version,
        pgDumpVersion,
        latestMigration,
        format: 'custom' as const,
        compression: env.compression,
        tables,
        totalRows: Object.values(tables).reduce((a, b) => a + b, 0),
        sizeBytes: bytes,
        sha256,
        snapshotAt: meta!.at.toISOString(),
        databaseSizeBytes: Number(meta!.size),
        createdAt: new Date().toISOString(),
        durationMs: 0,
      };
    },
  );
  ctx.progress(92, 'renaming the file into place');
  await rename(partial, final);
  await catalogue.syncDir();
  manifest.sizeBytes = (await stat(final)).size;
  return manifest;
}

/** Scratch databases are named `sw_verify_…` / `sw_restore_…`; nothing else is ever dropped as one. */
export const SCRATCH_DATABASE_PATTERN = /^sw_(verify|restore)_[a-z0-9_]+$/;

/**
 * Creates an empty database on the server, dropped by the returned function. Its name is
 * recorded as the job's scratch first, so a killed process leaves nothing behind for long.
 */
export async function createScratchDatabase(
  adminUrl: string,
  prefix: 'sw_verify' | 'sw_restore',
  ctx: Pick<Step, 'track'>,
): Promise<{ name: string; url: string; drop: () => Promise<void>; keep: () => Promise<void> }> {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const forget = await ctx.track({ kind: 'database', name });
  const admin = createSql({ url: adminUrl, applicationName: 'spywatcher-ops', max: 1 });
  try {
    await admin.unsafe(`create database ${quoteIdent(name)} template template0`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  return {
    name,
    url: withDatabase(adminUrl, name),
    drop: async () => {
      await dropDatabase(adminUrl, name);
      await forget();
    },
    // it became something else (a restore's swapped-in target): not scratch any more
    keep: forget,
  };
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = createSql({ url: adminUrl, applicationName: 'spywatcher-ops', max: 1 });
  try {
    await admin.unsafe(`drop database if exists ${quoteIdent(name)} with (force)`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** Removes a dead job's leftovers: scratch databases by their pattern, partial files inside BACKUP_DIR. */
export async function removeScratch(env: BackupEnv, items: Scratch[]): Promise<void> {
  for (const item of items) {
    if (item.kind === 'database' && SCRATCH_DATABASE_PATTERN.test(item.name)) {
      await dropDatabase(env.adminUrl, item.name);
    } else if (item.kind === 'file' && env.catalogue.contains(item.path)) {
      await rm(item.path, { force: true });
    } else if (item.kind === 'read-only') {
      await releaseReadOnly(env.adminUrl, item.name);
    }
  }
}

/** Makes a database a restore had set read-only writable again (if it still exists). */
export async function releaseReadOnly(adminUrl: string, name: string): Promise<void> {
  const admin = createSql({ url: adminUrl, applicationName: 'spywatcher-ops', max: 1 });
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${name}`;
    if (exists) await admin.unsafe(`alter database ${quoteIdent(name)} reset default_transaction_read_only`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** Closes a connection when the job is cancelled, so the statement in flight ends at once. */
function endOnAbort(sql: Sql, signal: AbortSignal): () => void {
  const onAbort = () => void sql.end({ timeout: 0 }).catch(() => {});
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) onAbort();
  return () => signal.removeEventListener('abort', onAbort);
}

/** pg_restore of a backup file into an (empty) database, with progress from its verbose output. */
export async function restoreInto(
  env: BackupEnv,
  manifest: BackupManifest,
  targetUrl: string,
  ctx: Pick<Step, 'progress' | 'signal'>,
  span: [number, number],
): Promise<void> {
  const total = Object.keys(manifest.tables).length || 1;
  let loaded = 0;
  await runPgTool(
    env.pgRestore,
    [
      '--format=custom',
      '--no-owner',
      '--no-acl',
      '--exit-on-error',
      '--no-password',
      '--verbose',
      `--jobs=${env.restoreJobs}`,
      `--dbname=${pgEnv(targetUrl).database}`,
      env.catalogue.dumpPath(manifest.id),
    ],
    {
      url: targetUrl,
      signal: ctx.signal,
      onStderrLine: (line) => {
        const m = /processing data for table "([^"]+)"/.exec(line);
        if (m) {
          loaded += 1;
          ctx.progress(span[0] + ((span[1] - span[0]) * Math.min(loaded, total)) / total, `restored ${m[1]}`);
        }
      },
    },
  );
}

/** Compares a restored database with its manifest and runs amcheck on its B-tree indexes. */
export async function checkRestored(
  manifest: BackupManifest,
  url: string,
  ctx: Pick<Step, 'progress' | 'signal'>,
  span: [number, number],
): Promise<Omit<Verification, 'verifiedAt' | 'durationMs' | 'checksumOk'>> {
  const sql = createSql({ url, applicationName: 'spywatcher-ops-verify', max: 1, statementTimeoutMs: 0 });
  const detach = endOnAbort(sql, ctx.signal);
  const problems: string[] = [];
  try {
    const counts = await exactRowCounts(sql);
    for (const [table, expected] of Object.entries(manifest.tables)) {
      const actual = counts[table];
      if (actual === undefined) problems.push(`table ${table} is missing after restore`);
      else if (actual !== expected)
        problems.push(`table ${table}: ${actual} rows restored, ${expected} in the backup`);
    }
    for (const table of Object.keys(counts)) {
      if (!(table in manifest.tables))
        problems.push(`table ${table} was restored but is not in the manifest`);
    }
    ctx.progress(span[0], 'checking indexes with amcheck');
    const amcheck = await checkBtreeIndexes(sql, (done, total) =>
      ctx.progress(span[0] + ((span[1] - span[0]) * done) / Math.max(total, 1), `amcheck ${done}/${total}`),
    );
    for (const f of amcheck.failures) problems.push(`index ${f.index} failed amcheck: ${f.error}`);
    return {
      ok: problems.length === 0,
      tablesChecked: Object.keys(manifest.tables).length,
      rowsChecked: Object.values(counts).reduce((a, b) => a + b, 0),
      indexesChecked: amcheck.checked,
      problems,
    };
  } finally {
    detach();
    await sql.end({ timeout: 5 });
  }
}

/**
 * Proves a backup restorable: checksum, restore into a scratch database, row counts against the
 * manifest, amcheck, drop the scratch database; the verdict is written into the manifest.
 */
export async function verifyBackup(
  env: BackupEnv,
  id: string,
  ctx: Step & { id?: string },
): Promise<Verification> {
  const started = performance.now();
  const manifest = await env.catalogue.get(id);
  if (!manifest) throw new Error(`backup ${id} not found`);
  ctx.progress(1, 'checking the sha256 checksum');
  const checksumOk = (await sha256File(env.catalogue.dumpPath(id), ctx.signal)) === manifest.sha256;
  let verdict: Verification;
  if (!checksumOk) {
    verdict = {
      ok: false,
      via: 'verify',
      ...(ctx.id ? { jobId: ctx.id } : {}),
      checksumOk,
      verifiedAt: new Date().toISOString(),
      durationMs: Math.round(performance.now() - started),
      tablesChecked: 0,
      rowsChecked: 0,
      indexesChecked: 0,
      problems: ['the file does not match the checksum in its manifest'],
    };
  } else {
    const scratch = await createScratchDatabase(env.adminUrl, 'sw_verify', ctx);
    try {
      ctx.progress(10, `restoring into scratch database ${scratch.name}`);
      let check: Awaited<ReturnType<typeof checkRestored>>;
      try {
        await restoreInto(env, manifest, scratch.url, ctx, [10, 70]);
        check = await checkRestored(manifest, scratch.url, ctx, [75, 98]);
      } catch (error) {
        if (ctx.signal.aborted) throw error;
        const problem = `restore failed: ${(error as Error).message}`;
        check = { ok: false, tablesChecked: 0, rowsChecked: 0, indexesChecked: 0, problems: [problem] };
      }
      verdict = {
        ...check,
        via: 'verify',
        ...(ctx.id ? { jobId: ctx.id } : {}),
        checksumOk,
        verifiedAt: new Date().toISOString(),
        durationMs: Math.round(performance.now() - started),
      };
    } finally {
      await scratch.drop();
    }
  }
  await env.catalogue.update(id, (m) => {
    m.verification = verdict;
  });
  return verdict;
}
