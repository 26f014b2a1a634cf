import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { TABLE_SPECS, type TableSpec } from './tables.ts';

export type ImportErrorCode =
  | 'FILE_NOT_FOUND'
  | 'NOT_SQLITE'
  | 'NOT_SPYWATCHER'
  | 'MISSING_TABLE'
  | 'MISSING_COLUMN'
  | 'TARGET_UNREACHABLE'
  | 'TARGET_NOT_MIGRATED'
  | 'ALREADY_RUNNING';

/** An error whose message is meant for the operator (no stack trace needed). */
export class ImportError extends Error {
  readonly code: ImportErrorCode;
  constructor(code: ImportErrorCode, message: string) {
    super(message);
    this.name = 'ImportError';
    this.code = code;
  }
}

export interface LegacySource {
  path: string;
  db: DatabaseSync;
  /** Identifies this legacy database across copies and moves of the file (checkpoints use it). */
  key: string;
  close(): void;
}

const SQLITE_MAGIC = 'SQLite format 3\0';

/**
 * Opens a legacy SpyWatcher SQLite file read-only and checks that it is one: an SQLite
 * file, holding SpyWatcher's tables with the columns the importer reads.
 */
export function openLegacySource(path: string, specs: readonly TableSpec[] = TABLE_SPECS): LegacySource {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new ImportError('FILE_NOT_FOUND', `${path} is not a file`);
    size = st.size;
  } catch (error) {
    if (error instanceof ImportError) throw error;
    throw new ImportError('FILE_NOT_FOUND', `cannot read ${path}: ${(error as Error).message}`);
  }
  // An empty file would open as an empty database; check the header ourselves for a clear message.
  const header = Buffer.alloc(16);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, header, 0, 16, 0);
  } finally {
    closeSync(fd);
  }
  if (size < 100 || header.toString('latin1') !== SQLITE_MAGIC) {
    throw new ImportError('NOT_SQLITE', `${path} is not an SQLite database (no "SQLite format 3" header)`);
  }
  let db: DatabaseSync;
  let tables: Set<string>;
  try {
    db = new DatabaseSync(path, { readOnly: true });
    const rows = db.prepare(`select name from sqlite_master where type = 'table'`).all() as {
      name: string;
    }[];
    tables = new Set(rows.map((r) => r.name));
  } catch (error) {
    throw new ImportError('NOT_SQLITE', `${path} cannot be read as SQLite: ${(error as Error).message}`);
  }
  const known = specs.filter((s) => tables.has(s.legacy));
  if (known.length === 0) {
    db.close();
    throw new ImportError(
      'NOT_SPYWATCHER',
      `${path} is an SQLite database but not SpyWatcher's: none of its tables (${[...tables].slice(0, 8).join(', ') || 'none'}) is one of ${specs.map((s) => s.legacy).join(', ')}`,
    );
  }
  const missing = specs.filter((s) => !tables.has(s.legacy)).map((s) => s.legacy);
  if (missing.length > 0) {
    db.close();
    throw new ImportError('MISSING_TABLE', `${path} lacks SpyWatcher table(s) ${missing.join(', ')}`);
  }
  for (const spec of specs) {
    const cols = new Set(
      (db.prepare(`select name from pragma_table_info(?)`).all(spec.legacy) as { name: string }[]).map(
        (c) => c.name,
      ),
    );
    const absent = spec.legacyColumns.filter((c) => !cols.has(c));
    if (absent.length > 0) {
      db.close();
      throw new ImportError(
        'MISSING_COLUMN',
        `table ${spec.legacy} in ${path} lacks column(s) ${absent.join(', ')}`,
      );
    }
  }
  return { path, db, key: sourceKey(db, tables, specs), close: () => db.close() };
}

function stringify(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}

/**
 * Prisma's migration history holds random ids written when that database was created, and the
 * first row of each table is fixed once written, so together they tell one legacy database
 * from another while staying the same for a copy of the file and for rows appended later.
 */
function sourceKey(db: DatabaseSync, tables: Set<string>, specs: readonly TableSpec[]): string {
  const h = createHash('sha256');
  if (tables.has('_prisma_migrations')) {
    for (const r of db.prepare('select * from _prisma_migrations order by migration_name, id').iterate()) {
      h.update(stringify([r.id, r.checksum, r.migration_name]));
    }
  }
  for (const spec of specs) {
    const stmt = db.prepare(`select * from "${spec.legacy}" order by id limit 1`);
    stmt.setReadBigInts(true);
    const first = stmt.get();
    h.update(`${spec.legacy}:${first ? stringify(first) : ''}\n`);
  }
  return `sqlite-${h.digest('hex').slice(0, 32)}`;
}
