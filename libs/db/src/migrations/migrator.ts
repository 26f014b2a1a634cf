import { hostname, userInfo } from 'node:os';
import type { Sql } from '../client.ts';
import {
  type MigrationFile,
  type RepeatableFile,
  readMigrationFiles,
  readRepeatableFiles,
  splitStatements,
} from './files.ts';
import { changedStoredFunctions, type StoredFunction, storedFunctions } from './stored-functions.ts';

/** Arbitrary constant shared by every migrate run: the key of the session advisory lock. */
const MIGRATE_LOCK_KEY = 727_274_001;
/** How long one migration's statement waits for a table lock before it fails (`lockTimeoutMs`). */
export const DEFAULT_MIGRATION_LOCK_TIMEOUT_MS = 5000;

export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
  applied_at: Date;
  duration_ms: number;
  applied_by: string;
}

export type MigrationState = 'applied' | 'pending' | 'changed' | 'missing';

export interface MigrationStatusRow {
  version: number;
  name: string;
  state: MigrationState;
  appliedAt: string | null;
  durationMs: number | null;
  appliedBy: string | null;
  noTransaction: boolean;
}

/**
 * applied: the latest application has the file's checksum; pending: never applied; changed: the
 * file changed since, so the next migrate applies it again; removed: applied, file gone (what it
 * defined stays in the database until a versioned migration drops it).
 */
export type RepeatableState = 'applied' | 'pending' | 'changed' | 'removed';

export interface RepeatableStatusRow {
  name: string;
  file: string;
  state: RepeatableState;
  appliedAt: string | null;
  durationMs: number | null;
  appliedBy: string | null;
}

/** The history table of repeatable migrations, created by a versioned migration. */
const REPEATABLE_HISTORY = 'schema_repeatable_migrations';

export class MigrationError extends Error {
  readonly file: string | undefined;
  constructor(message: string, file?: string, options?: ErrorOptions) {
    super(message, options);
    this.file = file;
  }
}

export interface MigratorDeps {
  sql: Sql;
  dir: string;
  /** Progress lines for a person (the CLI prints them; the service logs them). */
  log?: (line: string) => void;
  /**
   * `lock_timeout` for each migration: a statement that waits longer for a lock fails (and its
   * migration rolls back) instead of queueing every reader and writer of that table behind it.
   * A file may still `set local lock_timeout` itself. 0 waits forever.
   */
  lockTimeoutMs?: number;
}

async function ensureHistoryTable(sql: Sql): Promise<void> {
  await sql`
    create table if not exists schema_migrations (
      version integer primary key,
      name text not null,
      checksum text not null,
      applied_at timestamptz not null default now(),
      duration_ms integer not null,
      applied_by text not null
    )
  `;
}

async function appliedMigrations(sql: Sql): Promise<AppliedMigration[]> {
  const exists = await sql<{ t: string | null }[]>`select to_regclass('schema_migrations')::text as t`;
  if (!exists[0]?.t) return [];
  return sql<AppliedMigration[]>`
    select version, name, checksum, applied_at, duration_ms, applied_by from schema_migrations order by version
  `;
}

/** Applied, pending, changed (edited after being applied) and missing (applied, file removed). */
export async function migrationStatus(deps: MigratorDeps): Promise<MigrationStatusRow[]> {
  const files = await readMigrationFiles(deps.dir);
  const applied = await appliedMigrations(deps.sql);
  const byVersion = new Map(applied.map((a) => [a.version, a]));
  const rows: MigrationStatusRow[] = files.map((f) => {
    const a = byVersion.get(f.version);
    return {
      version: f.version,
      name: f.name,
      state: !a ? 'pending' : a.checksum === f.checksum ? 'applied' : 'changed',
      appliedAt: a ? a.applied_at.toISOString() : null,
      durationMs: a ? a.duration_ms : null,
      appliedBy: a ? a.applied_by : null,
      noTransaction: f.noTransaction,
    };
  });
  for (const a of applied) {
    if (!files.some((f) => f.version === a.version)) {
      rows.push({
        version: a.version,
        name: a.name,
        state: 'missing',
        appliedAt: a.applied_at.toISOString(),
        durationMs: a.duration_ms,
        appliedBy: a.applied_by,
        noTransaction: false,
      });
    }
  }
  return rows.sort((x, y) => x.version - y.version);
}

interface RepeatableApplication {
  name: string;
  checksum: string;
  applied_at: Date;
  duration_ms: number;
  applied_by: string;
}

/** The latest application of each repeatable; null when the history table does not exist yet. */
async function repeatableApplications(sql: Sql): Promise<RepeatableApplication[] | null> {
  const [exists] = await sql<{ t: string | null }[]>`select to_regclass(${REPEATABLE_HISTORY})::text as t`;
  if (!exists?.t) return null;
  return sql<RepeatableApplication[]>`
    select distinct on (name) name, checksum, applied_at, duration_ms, applied_by
    from ${sql(REPEATABLE_HISTORY)}
    order by name, id desc
  `;
}

/** Each repeatable file with its state, then the removed ones, in name order. */
export async function repeatableStatus(deps: MigratorDeps): Promise<RepeatableStatusRow[]> {
  const files = await readRepeatableFiles(deps.dir);
  const latest = (await repeatableApplications(deps.sql)) ?? [];
  const byName = new Map(latest.map((a) => [a.name, a]));
  const row = (name: string, file: string, state: RepeatableState): RepeatableStatusRow => {
    const a = byName.get(name);
    return {
      name,
      file,
      state,
      appliedAt: a ? a.applied_at.toISOString() : null,
      durationMs: a ? a.duration_ms : null,
      appliedBy: a ? a.applied_by : null,
    };
  };
  const rows = files.map((f) => {
    const a = byName.get(f.name);
    return row(f.name, f.file, !a ? 'pending' : a.checksum === f.checksum ? 'applied' : 'changed');
  });
  for (const a of latest) {
    if (!files.some((f) => f.name === a.name))
      rows.push(row(a.name, `repeatable/R__${a.name}.sql`, 'removed'));
  }
  return rows.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

function refuseDrift(rows: MigrationStatusRow[]): void {
  const changed = rows.filter((r) => r.state === 'changed');
  const missing = rows.filter((r) => r.state === 'missing');
  const problems = [
    ...changed.map(
      (r) => `${pad(r.version)}_${r.name}.sql was edited after it was applied (checksum differs)`,
    ),
    ...missing.map((r) => `${pad(r.version)}_${r.name}.sql was applied but its file is gone`),
  ];
  if (problems.length > 0) {
    throw new MigrationError(
      `refusing to migrate: ${problems.join('; ')}. Restore the original file(s) and add a new migration for the change.`,
    );
  }
}

export function pad(version: number): string {
  return String(version).padStart(4, '0');
}

export interface MigrateResult {
  applied: { version: number; name: string; durationMs: number }[];
  /** With dryRun, what would be applied. */
  planned: { version: number; name: string; noTransaction: boolean }[];
  /** Repeatable migrations applied after the versioned ones, in name order. */
  repeatables: { name: string; file: string; durationMs: number }[];
  /** With dryRun, the repeatables that would be applied (pending, or changed since applied). */
  plannedRepeatables: { name: string; file: string; state: 'pending' | 'changed' }[];
}

/**
 * Applies pending migrations in order, each in its own transaction (or statement by statement
 * for `-- migrate:no-transaction` files), recording each in schema_migrations; then the
 * repeatable migrations that are new or changed (`applyRepeatables`).
 *
 * Concurrency: a session-level advisory lock on a reserved connection guards the run. It is
 * taken with pg_try_advisory_lock in a polling loop rather than a blocking pg_advisory_lock,
 * because a backend blocked in that call holds a snapshot, and CREATE INDEX CONCURRENTLY in the
 * running migrator would wait for that snapshot while the waiter waits for the lock: a deadlock.
 */
export async function migrate(
  deps: MigratorDeps & { dryRun?: boolean; lockPollMs?: number },
): Promise<MigrateResult> {
  const log = deps.log ?? (() => {});
  const files = await readMigrationFiles(deps.dir);
  const repeatableFiles = await readRepeatableFiles(deps.dir);
  if (deps.dryRun) {
    const status = await migrationStatus(deps);
    refuseDrift(status);
    const pending = files.filter((f) => status.find((s) => s.version === f.version)?.state === 'pending');
    return {
      applied: [],
      planned: pending.map((f) => ({ version: f.version, name: f.name, noTransaction: f.noTransaction })),
      repeatables: [],
      plannedRepeatables: toApply(await repeatableStatus(deps)).map((r) => ({
        name: r.name,
        file: r.file,
        state: r.state,
      })),
    };
  }

  const conn = await deps.sql.reserve();
  try {
    let waited = false;
    for (;;) {
      const [row] = await conn<
        { locked: boolean }[]
      >`select pg_try_advisory_lock(${MIGRATE_LOCK_KEY}) as locked`;
      if (row?.locked) break;
      if (!waited) log('another migrate run holds the lock; waiting for it to finish');
      waited = true;
      await new Promise((r) => setTimeout(r, deps.lockPollMs ?? 250));
    }
    try {
      await ensureHistoryTable(deps.sql);
      const status = await migrationStatus(deps);
      refuseDrift(status);
      const pending = files.filter((f) => status.find((s) => s.version === f.version)?.state === 'pending');
      if (pending.length === 0) log('database is up to date');
      const applied: MigrateResult['applied'] = [];
      const by = `${userInfo().username}@${hostname()}`;
      const lockTimeoutMs = deps.lockTimeoutMs ?? DEFAULT_MIGRATION_LOCK_TIMEOUT_MS;
      for (const file of pending) {
        const started = performance.now();
        log(`applying ${file.file}${file.noTransaction ? ' (outside a transaction)' : ''}`);
        await applyOne(conn, file, by, started, lockTimeoutMs);
        const durationMs = Math.round(performance.now() - started);
        applied.push({ version: file.version, name: file.name, durationMs });
        log(`applied ${file.file} in ${durationMs} ms`);
      }
      const repeatables = await applyRepeatables(conn, deps, repeatableFiles, by, lockTimeoutMs, log);
      return { applied, planned: [], repeatables, plannedRepeatables: [] };
    } finally {
      await conn`select pg_advisory_unlock(${MIGRATE_LOCK_KEY})`;
    }
  } finally {
    conn.release();
  }
}

type Reserved = Awaited<ReturnType<Sql['reserve']>>;

function toApply(rows: RepeatableStatusRow[]) {
  return rows.filter(
    (r): r is RepeatableStatusRow & { state: 'pending' | 'changed' } =>
      r.state === 'pending' || r.state === 'changed',
  );
}

/**
 * Applies the repeatables that are pending or changed, in name order, after every versioned
 * migration: each in its own transaction with the migration's lock_timeout, recorded in the same
 * transaction, so a failing one leaves its functions and the history as they were.
 */
async function applyRepeatables(
  conn: Reserved,
  deps: MigratorDeps,
  files: RepeatableFile[],
  by: string,
  lockTimeoutMs: number,
  log: (line: string) => void,
): Promise<MigrateResult['repeatables']> {
  if (files.length === 0) return [];
  if ((await repeatableApplications(deps.sql)) === null) {
    throw new MigrationError(
      `repeatable migrations need the table ${REPEATABLE_HISTORY}, which a versioned migration creates; none of the files in ${deps.dir} did`,
    );
  }
  const due = new Set(toApply(await repeatableStatus(deps)).map((r) => r.name));
  if (due.size === 0) return [];
  // Read once (a catalog-wide query): a repeatable that changed one of these is refused, so the
  // set and their definitions stay the same through the run.
  const stored = await storedFunctions(conn);
  const applied: MigrateResult['repeatables'] = [];
  for (const file of files.filter((f) => due.has(f.name))) {
    const started = performance.now();
    log(`applying ${file.file}`);
    await applyRepeatable(conn, file, stored, by, started, lockTimeoutMs);
    const durationMs = Math.round(performance.now() - started);
    applied.push({ name: file.name, file: file.file, durationMs });
    log(`applied ${file.file} in ${durationMs} ms`);
  }
  return applied;
}

/** A repeatable changed a function whose results are stored (a generated column, an index). */
class StoredDataWouldGoStale extends Error {
  constructor(changed: StoredFunction[]) {
    super(
      changed.map((f) => `${f.signature}, whose results are stored in ${f.dependents.join(', ')}`).join('; '),
    );
  }
}

async function applyRepeatable(
  conn: Reserved,
  file: RepeatableFile,
  stored: StoredFunction[],
  by: string,
  started: number,
  lockTimeoutMs: number,
): Promise<void> {
  try {
    await conn.unsafe('begin');
    try {
      await conn`select set_config('lock_timeout', ${`${lockTimeoutMs}ms`}, true)`;
      await conn.unsafe(file.sql);
      const changed = await changedStoredFunctions(conn, stored);
      if (changed.length > 0) throw new StoredDataWouldGoStale(changed);
      await conn`
        insert into ${conn(REPEATABLE_HISTORY)} (name, checksum, duration_ms, applied_by)
        values (${file.name}, ${file.checksum}, ${Math.round(performance.now() - started)}, ${by})
      `;
      await conn.unsafe('commit');
    } catch (error) {
      await conn.unsafe('rollback');
      throw error;
    }
  } catch (error) {
    const unchanged = 'its transaction was rolled back: its functions and the history are as they were';
    if (error instanceof StoredDataWouldGoStale) {
      throw new MigrationError(
        `repeatable migration ${file.file} refused: it changes ${error.message}. Replacing the function would leave the stored values and index entries computed by the old definition. Change it in a versioned migration that also recomputes them, and put the same definition in ${file.file}; ${unchanged}`,
        file.file,
      );
    }
    throw new MigrationError(
      describeFailure(`repeatable migration ${file.file}`, file.sql, error, unchanged),
      file.file,
      { cause: error },
    );
  }
}

async function applyOne(
  conn: Reserved,
  file: MigrationFile,
  by: string,
  started: number,
  lockTimeoutMs: number,
): Promise<void> {
  const record = (q: Reserved) => q`
    insert into schema_migrations (version, name, checksum, duration_ms, applied_by)
    values (${file.version}, ${file.name}, ${file.checksum}, ${Math.round(performance.now() - started)}, ${by})
  `;
  const lockTimeout = `${lockTimeoutMs}ms`;
  try {
    if (file.noTransaction) {
      await conn`select set_config('lock_timeout', ${lockTimeout}, false)`;
      try {
        for (const statement of splitStatements(file.sql)) await conn.unsafe(statement);
      } finally {
        await conn`reset lock_timeout`;
      }
      await record(conn);
    } else {
      await conn.unsafe('begin');
      try {
        await conn`select set_config('lock_timeout', ${lockTimeout}, true)`;
        await conn.unsafe(file.sql);
        await record(conn);
        await conn.unsafe('commit');
      } catch (error) {
        await conn.unsafe('rollback');
        throw error;
      }
    }
  } catch (error) {
    const rolledBack = file.noTransaction
      ? 'it ran outside a transaction, so statements before the failing one stay applied'
      : 'its transaction was rolled back; the database is at the previous version';
    throw new MigrationError(
      describeFailure(`migration ${file.file}`, file.sql, error, rolledBack),
      file.file,
      { cause: error },
    );
  }
}

function describeFailure(what: string, script: string, error: unknown, rolledBack: string): string {
  const e = error as { message?: string; code?: string; position?: string };
  let where = '';
  if (e.position) {
    const line = script.slice(0, Number(e.position)).split('\n').length;
    where = ` at line ${line}`;
  }
  // 55P03: lock_timeout expired while a statement waited for a lock held by another session.
  const lockHint =
    e.code === '55P03'
      ? '; another session held a lock it needed: retry when it is done, or raise MIGRATION_LOCK_TIMEOUT_MS'
      : '';
  return `${what} failed${where}: ${e.message ?? String(error)}${e.code ? ` (SQLSTATE ${e.code})` : ''}; ${rolledBack}${lockHint}`;
}
