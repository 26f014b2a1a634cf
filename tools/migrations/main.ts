/**
 * npm run lint:migrations [-- --dir DIR] [--baseline N]: squawk on the migrations above the
 * baseline and on the repeatable ones.
 */
import { parseArgs } from 'node:util';
import { MIGRATIONS_DIR } from '@spywatcher/migrator/migrations';
import { BASELINE_VERSION, lintMigrations } from './lint.ts';

function main(): number {
  const { values } = parseArgs({
    options: { dir: { type: 'string' }, baseline: { type: 'string' } },
  });
  const baseline = values.baseline === undefined ? BASELINE_VERSION : Number(values.baseline);
  if (!Number.isInteger(baseline) || baseline < 0) {
    process.stderr.write(`--baseline must be a whole number, got ${values.baseline}\n`);
    return 64;
  }
  const result = lintMigrations(values.dir ?? MIGRATIONS_DIR, baseline);
  for (const p of result.problems) process.stdout.write(`${p}\n`);
  process.stdout.write(
    `lint:migrations: ${result.files.length} file(s) (above ${String(baseline).padStart(4, '0')}, and repeatable), ${result.problems.length} problem(s)\n`,
  );
  return result.problems.length === 0 ? 0 : 1;
}

process.exitCode = main();
