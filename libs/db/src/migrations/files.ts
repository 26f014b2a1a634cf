import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface MigrationFile {
  version: number;
  name: string;
  file: string;
  sql: string;
  checksum: string;
  /** Declared with `-- migrate:no-transaction` on its first line. */
  noTransaction: boolean;
}

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;
const NO_TRANSACTION = /^--\s*migrate:no-transaction\b/;

export class MigrationFileError extends Error {}

/** Reads `NNNN_description.sql` files in version order; other names are refused. */
export async function readMigrationFiles(dir: string): Promise<MigrationFile[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.sql')).sort();
  const files: MigrationFile[] = [];
  for (const file of names) {
    const m = FILE_PATTERN.exec(file);
    if (!m) {
      throw new MigrationFileError(
        `migration file name "${file}" must look like NNNN_description.sql (four digits, lower-case words and underscores)`,
      );
    }
    const sql = await readFile(join(dir, file), 'utf8');
    const version = Number(m[1]);
    const previous = files.at(-1);
    if (previous && previous.version === version) {
      throw new MigrationFileError(`two migration files share version ${m[1]}: ${previous.file} and ${file}`);
    }
    files.push({
      version,
      name: m[2]!,
      file,
      sql,
      checksum: sha256(sql),
      noTransaction: NO_TRANSACTION.test(sql.trimStart()),
    });
  }
  return files;
}

export interface RepeatableFile {
  /** What follows `R__`: by convention the name of the one function (all its overloads) it defines. */
  name: string;
  /** Relative to the migrations directory, e.g. `repeatable/R__sw_message_tsv.sql`. */
  file: string;
  sql: string;
  checksum: string;
}

/** Repeatable migrations live in this folder of the migrations directory. */
export const REPEATABLE_DIR = 'repeatable';
const REPEATABLE_PATTERN = /^R__([a-z0-9_]+)\.sql$/;

/**
 * Reads `repeatable/R__name.sql` in name order (none when the folder is missing); other names and
 * `-- migrate:no-transaction` are refused, since a repeatable is re-applied whole in one transaction.
 */
export async function readRepeatableFiles(dir: string): Promise<RepeatableFile[]> {
  let names: string[];
  try {
    names = (await readdir(join(dir, REPEATABLE_DIR))).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const files: RepeatableFile[] = [];
  for (const entry of names) {
    const file = `${REPEATABLE_DIR}/${entry}`;
    const m = REPEATABLE_PATTERN.exec(entry);
    if (!m) {
      throw new MigrationFileError(
        `repeatable migration file name "${file}" must look like R__name.sql (lower-case words and underscores)`,
      );
    }
    const sql = await readFile(join(dir, file), 'utf8');
    if (NO_TRANSACTION.test(sql.trimStart())) {
      throw new MigrationFileError(`${file}: a repeatable migration always runs in one transaction`);
    }
    files.push({ name: m[1]!, file, sql, checksum: sha256(sql) });
  }
  return files;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Splits a script into statements for files that run outside a transaction (PostgreSQL runs
 * a multi-statement query string as one implicit transaction, which CREATE INDEX CONCURRENTLY
 * refuses). Understands quotes, quoted identifiers, dollar quoting and comments.
 */
export function splitStatements(script: string): string[] {
  const statements: string[] = [];
  let current = '';
  let i = 0;
  while (i < script.length) {
    const ch = script[i]!;
    const rest = script.slice(i);
    if (rest.startsWith('--')) {
      const end = script.indexOf('\n', i);
      i = end === -1 ? script.length : end + 1;
      current += '\n';
      continue;
    }
    if (rest.startsWith('/*')) {
      const end = script.indexOf('*/', i + 2);
      i = end === -1 ? script.length : end + 2;
      current += ' ';
      continue;
    }
    if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < script.length) {
        if (script[j] === ch && script[j + 1] === ch) j += 2;
        else if (script[j] === ch) break;
        else j++;
      }
      current += script.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    const dollar = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(rest);
    if (dollar) {
      const tag = dollar[0];
      const end = script.indexOf(tag, i + tag.length);
      const stop = end === -1 ? script.length : end + tag.length;
      current += script.slice(i, stop);
      i = stop;
      continue;
    }
    if (ch === ';') {
      if (current.trim()) statements.push(current.trim());
      current = '';
      i++;
      continue;
    }
    current += ch;
    i++;
  }
  if (current.trim()) statements.push(current.trim());
  return statements;
}
