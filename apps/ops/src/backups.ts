import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createSql, type Sql, withDatabase } from '@spywatcher/db';
import type { BackupCatalogue, BackupManifest, Verification } from './catalogue.ts';
import { newBackupId } from './catalogue.ts';
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
  offsite?: Offsite;
}

type Progress = Pick<JobContext, 'progress' | 'signal'>;

const execFileAsync = promisify(execFile);

const versions = new Map<string, Promise<string>>();

/** `pg_dump --version`, asked once per binary and process. */
function toolVersion(binary: string): Promise<string> {
  let version = versions.get(binary);
  if (!version) {
    version = execFileAsync(binary, ['--version']).then(({ stdout }) => stdout.trim());
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

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(
    createReadStream(path),
    new Writable({
      write(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        done();
      },
    }),
  );
  return hash.digest('hex');
}

/**
 * pg_dump -Fc of `source` into the catalogue. The dump and the row counts come from one
 * exported snapshot, so the manifest's counts are exactly what the file holds. Output goes to
 * a hidden temporary file that is fsynced and renamed only when pg_dump succeeded; on any
 * failure it is removed, and the error carries pg_dump's message without passwords.
 */
export async function createBackup(
  env: BackupEnv,
  source: { url: string; sql: Sql },
  ctx: Progress,
): Promise<BackupManifest> {
  const started = performance.now();
  const id = newBackupId();
  const catalogue = env.catalogue;
  await catalogue.ensureDir();
  const partial = catalogue.partialPath(id);
  const final = catalogue.dumpPath(id);
  const { database, password } = pgEnv(source.url);
  const pgDumpVersion = await toolVersion(env.pgDump);
  ctx.progress(1, 'taking a snapshot');
  let written: BackupManifest;
  try {
    const manifest: BackupManifest = await source.sql.begin(
      'isolation level repeatable read read only',
      async (tx) => {
        // counting a large log can outlast the pool's statement timeout; a lock must not be waited for forever
        await tx`select set_config('lock_timeout', ${String(env.lockWaitTimeoutMs)}, true), set_config('statement_timeout', '0', true)`;
        const [meta] = await tx<
          { snapshot: string; version: string; migrations: string | null; pid: number }[]
        >`
        select pg_export_snapshot() as snapshot, current_setting('server_version') as version, pg_backend_pid() as pid,
               to_regclass('schema_migrations')::text as migrations
      `;
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
        const handle = await open(partial, 'wx', 0o640);
        const file = handle.createWriteStream();
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
            stdout: new HashingFileSink(hash.stream, file),
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
          serverVersion: meta!.version,
          pgDumpVersion,
          latestMigration,
          format: 'custom' as const,
          compression: env.compression,
          tables,
          totalRows: Object.values(tables).reduce((a, b) => a + b, 0),
          sizeBytes: bytes,
          sha256,
          createdAt: new Date().toISOString(),
          durationMs: 0,
        };
      },
    );
    ctx.progress(92, 'syncing the file');
    const handle = await open(partial, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(partial, final);
    await catalogue.syncDir();
    manifest.sizeBytes = (await stat(final)).size;
    manifest.durationMs = Math.round(performance.now() - started);
    await catalogue.write(manifest);
    written = manifest;
  } catch (error) {
    await rm(partial, { force: true });
    await rm(final, { force: true });
    let message = (error as Error).message;
    if (/pg_dump failed/.test(message) && /statement timeout|lock timeout/.test(message)) {
      // pg_dump enforces --lock-wait-timeout with a statement timeout on its LOCK TABLE
      message += ` (a table lock was not granted within BACKUP_LOCK_WAIT_TIMEOUT_MS=${env.lockWaitTimeoutMs}; something holds an exclusive lock)`;
    }
    throw new Error(redactSecrets(message, [password]));
  }
  // the local backup is complete and stays whatever happens to its off-site copy
  if (env.offsite) {
    ctx.progress(95, 'copying off-site');
    try {
      written.offsite = await env.offsite.upload(final, written);
      delete written.offsiteError;
    } catch (error) {
      written.offsiteError = redactSecrets((error as Error).message, [password]);
    }
    await catalogue.write(written);
  }
  return written;
}

/** Ends the file stream after the hashing stage, so pipeline() sees one writable. */
class HashingFileSink extends Writable {
  private readonly hash: Transform;
  private readonly done: Promise<void>;
  constructor(hash: Transform, file: NodeJS.WritableStream) {
    super();
    this.hash = hash;
    this.done = pipeline(hash, file as unknown as Writable);
  }
  override _write(chunk: Buffer, enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.hash.write(chunk, enc, cb);
  }
  override _final(cb: (e?: Error | null) => void): void {
    this.hash.end();
    this.done.then(() => cb(), cb);
  }
  override _destroy(error: Error | null, cb: (e?: Error | null) => void): void {
    if (error) this.hash.destroy(error);
    cb(error);
  }
}

/** Creates an empty database on the server, dropped by the returned function. */
export async function createScratchDatabase(
  adminUrl: string,
  prefix: string,
): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const admin = createSql({ url: adminUrl, applicationName: 'spywatcher-ops', max: 1 });
  try {
    await admin.unsafe(`create database ${quoteIdent(name)} template template0`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  return {
    name,
    url: withDatabase(adminUrl, name),
    drop: () => dropDatabase(adminUrl, name),
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

/** pg_restore of a backup file into an (empty) database, with progress from its verbose output. */
export async function restoreInto(
  env: BackupEnv,
  manifest: BackupManifest,
  targetUrl: string,
  ctx: Progress,
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
  ctx: Progress,
  span: [number, number],
): Promise<Omit<Verification, 'verifiedAt' | 'durationMs' | 'checksumOk'>> {
  const sql = createSql({ url, applicationName: 'spywatcher-ops-verify', max: 1, statementTimeoutMs: 0 });
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
    await sql.end({ timeout: 5 });
  }
}

/**
 * Proves a backup restorable: checksum, restore into a scratch database, row counts against the
 * manifest, amcheck, drop the scratch database; the verdict is written into the manifest.
 */
export async function verifyBackup(env: BackupEnv, id: string, ctx: Progress): Promise<Verification> {
  const started = performance.now();
  const manifest = await env.catalogue.get(id);
  if (!manifest) throw new Error(`backup ${id} not found`);
  ctx.progress(1, 'checking the sha256 checksum');
  const checksumOk = (await sha256File(env.catalogue.dumpPath(id))) === manifest.sha256;
  let verdict: Verification;
  if (!checksumOk) {
    verdict = {
      ok: false,
      checksumOk,
      verifiedAt: new Date().toISOString(),
      durationMs: Math.round(performance.now() - started),
      tablesChecked: 0,
      rowsChecked: 0,
      indexesChecked: 0,
      problems: ['the file does not match the checksum in its manifest'],
    };
  } else {
    const scratch = await createScratchDatabase(env.adminUrl, 'sw_verify');
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
