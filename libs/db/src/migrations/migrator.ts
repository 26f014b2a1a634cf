import { hostname, userInfo } from 'node:os';
import type { Sql } from '../client.ts';
import { type MigrationFile, readMigrationFiles, splitStatements } from './files.ts';

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
}

/**
 * Applies pending migrations in order, each in its own transaction (or statement by statement
 * for `-- migrate:no-transaction` files), recording each in schema_migrations.
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
  if (deps.dryRun) {
    const status = await migrationStatus(deps);
    refuseDrift(status);
    const pending = files.filter((f) => status.find((s) => s.version === f.version)?.state === 'pending');
    return {
      applied: [],
      planned: pending.map((f) => ({ version: f.version, name: f.name, noTransaction: f.noTransaction })),
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
      for (const file of pending) {
        const started = performance.now();
        log(`applying ${file.file}${file.noTransaction ? ' (outside a transaction)' : ''}`);
        await applyOne(conn, file, by, started, deps.lockTimeoutMs ?? DEFAULT_MIGRATION_LOCK_TIMEOUT_MS);
        const durationMs = Math.round(performance.now() - started);
        applied.push({ version: file.version, name: file.name, durationMs });
        log(`applied ${file.file} in ${durationMs} ms`);
      }
      return { applied, planned: [] };
    } finally {
      await conn`select pg_advisory_unlock(${MIGRATE_LOCK_KEY})`;
    }
  } finally {
    conn.release();
  }
}

type Reserved = Awaited<ReturnType<Sql['reserve']>>;

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
    throw new MigrationError(describeFailure(file, error), file.file, { cause: error });
  }
}

function describeFailure(file: MigrationFile, error: unknown): string {
  const e = error as { message?: string; code?: string; position?: string };
  let where = '';
  if (e.position) {
    const line = file.sql.slice(0, Number(e.position)).split('\n').length;
    where = ` at line ${line}`;
  }
  const rolledBack = file.noTransaction
    ? 'it ran outside a transaction, so statements before the failing one stay applied'
    : 'its transaction was rolled back; the database is at the previous version';
  // 55P03: lock_timeout expired while a statement waited for a lock held by another session.
  const lockHint =
    e.code === '55P03'
      ? '; another session held a lock it needed: retry when it is done, or raise MIGRATION_LOCK_TIMEOUT_MS'
      : '';
  return `migration ${file.file} failed${where}: ${e.message ?? String(error)}${e.code ? ` (SQLSTATE ${e.code})` : ''}; ${rolledBack}${lockHint}`;
}
