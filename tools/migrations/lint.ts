/**
 * Lints the migrations newer than the baseline and every repeatable migration with squawk,
 * refuses a `-- squawk-ignore` exemption that does not say why on the comment line right above
 * it, and a repeatable statement that could not run twice.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPEATABLE_DIR, splitStatements } from '@spywatcher/db';

/** Files up to this version were applied everywhere before the linter; they are never edited again. */
export const BASELINE_VERSION = 160;

const CONFIG = new URL('../../.squawk.toml', import.meta.url).pathname;

export interface LintResult {
  files: string[];
  problems: string[];
}

/** The migration files numbered above `baseline`, sorted. */
export function filesAbove(dir: string, baseline: number): string[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_.+\.sql$/.test(f) && Number(f.slice(0, 4)) > baseline)
    .sort();
}

/** Every repeatable migration (`repeatable/R__name.sql`), relative to `dir`, sorted. */
export function repeatableFiles(dir: string): string[] {
  const folder = join(dir, REPEATABLE_DIR);
  if (!existsSync(folder)) return [];
  return readdirSync(folder)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => `${REPEATABLE_DIR}/${f}`);
}

/** What a repeatable file may hold: statements that give the same result when run again. */
const RERUNNABLE =
  /^(create\s+or\s+replace\s+(function|procedure|view|trigger)\b|comment\s+on\b|grant\b|revoke\b)/i;

/** Statements of a repeatable migration that would fail or change something when it runs again. */
export function unrepeatableStatements(file: string, sql: string): string[] {
  return splitStatements(sql)
    .filter((statement) => !RERUNNABLE.test(statement))
    .map(
      (statement) =>
        `${file}: a repeatable migration runs again whenever it changes, so it holds only CREATE OR REPLACE (function, procedure, view, trigger), COMMENT, GRANT and REVOKE; move "${statement.split('\n')[0]}" to a versioned migration`,
    );
}

/** `-- squawk-ignore` lines without a reason on the comment line above them. */
export function unexplainedExemptions(file: string, sql: string): string[] {
  const lines = sql.split('\n');
  const problems: string[] = [];
  lines.forEach((line, i) => {
    if (!/^\s*--\s*squawk-ignore/.test(line)) return;
    const above = lines[i - 1]?.trim() ?? '';
    const explained = above.startsWith('--') && !/squawk-ignore|migrate:/.test(above) && above.length > 3;
    if (!explained) {
      problems.push(`${file}:${i + 1}: "${line.trim()}" needs the reason on the comment line above it`);
    }
  });
  return problems;
}

/** squawk's findings (gcc format) for `paths`; files that run outside a transaction are linted as such. */
function squawk(dir: string, files: string[]): string[] {
  const bin = fileURLToPath(import.meta.resolve('squawk-cli/js/bin/squawk'));
  const problems: string[] = [];
  const inTransaction = files.filter(
    (f) => !readFileSync(join(dir, f), 'utf8').startsWith('-- migrate:no-transaction'),
  );
  const outside = files.filter((f) => !inTransaction.includes(f));
  for (const [group, mode] of [
    [inTransaction, '--assume-in-transaction'],
    [outside, '--no-assume-in-transaction'],
  ] as const) {
    if (group.length === 0) continue;
    const run = spawnSync(
      process.execPath,
      [bin, '--config', CONFIG, '--reporter', 'gcc', mode, ...group.map((f) => join(dir, f))],
      { encoding: 'utf8' },
    );
    if (run.error) throw run.error;
    problems.push(...run.stdout.split('\n').filter((l) => /: (warning|error): /.test(l)));
    if (run.status !== 0 && !/: (warning|error): /.test(run.stdout)) {
      throw new Error(`squawk failed (exit ${run.status}): ${run.stderr.trim() || run.stdout.trim()}`);
    }
  }
  return problems;
}

export function lintMigrations(dir: string, baseline = BASELINE_VERSION): LintResult {
  const repeatables = repeatableFiles(dir);
  const files = [...filesAbove(dir, baseline), ...repeatables];
  const text = (f: string) => readFileSync(join(dir, f), 'utf8');
  const problems = [
    ...files.flatMap((f) => unexplainedExemptions(f, text(f))),
    ...repeatables.flatMap((f) => unrepeatableStatements(f, text(f))),
  ];
  if (files.length > 0) problems.push(...squawk(dir, files));
  return { files, problems };
}
