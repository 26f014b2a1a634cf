import { parseArgs } from 'node:util';
import {
  createSql,
  databaseNameOf,
  ensureDatabase,
  MIGRATIONS_DIR,
  MigrationError,
  MigrationFileError,
  migrate,
  migrationStatus,
  pad,
  partitionUpkeep,
  redactUrl,
} from '@spywatcher/db';
import { ConfigError, commonEnv, loadConfig } from '@spywatcher/service';

const USAGE = `usage: node src/cli.ts <command> [options]

commands:
  migrate [--dry-run]          apply pending migrations (--dry-run prints the plan)
  status [--json]              list applied, pending, changed and missing migrations
  partitions [--dry-run] [--ahead N] [--no-retention]
                               create partitions ahead and drop expired ones

environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/spywatcher)`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      'dry-run': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      ahead: { type: 'string' },
      'no-retention': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  if (!command || values.help || !['migrate', 'status', 'partitions'].includes(command)) {
    process.stderr.write(`${USAGE}\n`);
    return command && !values.help ? 64 : 0;
  }
  const config = loadConfig({ DATABASE_URL: commonEnv.DATABASE_URL });
  const sql = createSql({ url: config.DATABASE_URL, applicationName: 'spywatcher-migrator-cli', max: 2 });
  const log = (line: string) => process.stdout.write(`${line}\n`);
  try {
    if (command === 'migrate') {
      if (!values['dry-run'] && (await ensureDatabase(config.DATABASE_URL, 'spywatcher-migrator-cli'))) {
        log(`created database ${databaseNameOf(config.DATABASE_URL)}`);
      }
      log(`migrating ${redactUrl(config.DATABASE_URL)}`);
      const result = await migrate({ sql, dir: MIGRATIONS_DIR, dryRun: values['dry-run'], log });
      if (values['dry-run']) {
        if (result.planned.length === 0) log('nothing to apply');
        for (const p of result.planned) {
          log(
            `would apply ${pad(p.version)}_${p.name}.sql${p.noTransaction ? ' (outside a transaction)' : ''}`,
          );
        }
      } else {
        log(`${result.applied.length} migration(s) applied`);
      }
    } else if (command === 'status') {
      const rows = await migrationStatus({ sql, dir: MIGRATIONS_DIR });
      if (values.json) log(JSON.stringify(rows, null, 2));
      else {
        for (const r of rows) {
          log(
            `${r.state.padEnd(8)} ${pad(r.version)}_${r.name}.sql${r.appliedAt ? `  applied ${r.appliedAt} by ${r.appliedBy} in ${r.durationMs} ms` : ''}`,
          );
        }
        const bad = rows.filter((r) => r.state === 'changed' || r.state === 'missing');
        if (bad.length > 0) return 1;
      }
    } else {
      const ahead = values.ahead === undefined ? 3 : Number(values.ahead);
      if (!Number.isInteger(ahead) || ahead < 0 || ahead > 120) {
        process.stderr.write('--ahead must be a whole number from 0 to 120\n');
        return 64;
      }
      const actions = await partitionUpkeep(sql, {
        ahead,
        dryRun: values['dry-run'],
        skipRetention: values['no-retention'],
      });
      const verb = values['dry-run'] ? 'would ' : '';
      if (actions.length === 0) log('partitions are up to date');
      for (const a of actions) log(`${verb}${a.action} ${a.partition} [${a.from} .. ${a.to}): ${a.reason}`);
    }
    return 0;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (
    error instanceof MigrationError ||
    error instanceof MigrationFileError ||
    error instanceof ConfigError
  ) {
    process.stderr.write(`error: ${error.message}\n`);
  } else if ((error as { code?: string }).code === 'ECONNREFUSED') {
    process.stderr.write(`error: cannot reach PostgreSQL: ${(error as Error).message}\n`);
  } else {
    process.stderr.write(`error: ${(error as Error).stack ?? String(error)}\n`);
  }
  process.exitCode = 1;
}
