import { parseArgs } from 'node:util';
import {
  createSql,
  DEFAULT_MIGRATION_LOCK_TIMEOUT_MS,
  databaseNameOf,
  ensureDatabase,
  MigrationError,
  MigrationFileError,
  migrate,
  migrationStatus,
  pad,
  partitionPolicies,
  partitionUpkeep,
  RetentionError,
  redactUrl,
  repeatableStatus,
  type Sql,
  setRetention,
} from '@spywatcher/db';
import { ConfigError, commonEnv, env, loadConfig } from '@spywatcher/service';
import { createTokenCipher, parseTokenKeys, type TokenCipher } from './import/token-cipher.ts';
import { rotateTokens } from './import/token-rotation.ts';
import { MIGRATIONS_DIR } from './migrations-dir.ts';

const USAGE = `usage: node src/cli.ts <command> [options]

commands:
  migrate [--dry-run]          apply pending migrations, then new or changed repeatable ones
                               (--dry-run prints the plan)
  status [--json]              list applied, pending, changed and missing migrations, and the
                               repeatable ones (applied, pending, changed, removed)
  partitions [--dry-run] [--ahead N] [--no-retention]
                               create partitions ahead and drop expired ones (never one
                               holding imported rows, unless its table allows it)
  retention                    show each event table's retention
  retention TABLE DAYS|forever [--drop-imported | --keep-imported]
                               set a table's retention (off, i.e. forever, by default);
                               --drop-imported lets it drop imported history too
  tokens                       key rotation: re-encrypt the users' OAuth tokens under the first
                               key of TOKEN_ENCRYPTION_KEYS (and encrypt any stored in clear)

environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/spywatcher),
             TOKEN_ENCRYPTION_KEYS (tokens: the current key first, then the older ones),
             MIGRATION_LOCK_TIMEOUT_MS (default 5000: how long a migration waits for a table lock; 0 = forever)`;

/** TOKEN_ENCRYPTION_KEYS, required by `tokens` (exit 2 naming it when unset or malformed). */
function tokenCipherFromEnv(): TokenCipher {
  const cipher = loadConfig({
    TOKEN_ENCRYPTION_KEYS: env.custom(
      'keys of the OAuth tokens, the current one first',
      undefined,
      (raw, name) => createTokenCipher(parseTokenKeys(raw, name)),
    ),
  }).TOKEN_ENCRYPTION_KEYS;
  if (!cipher)
    throw new ConfigError(['TOKEN_ENCRYPTION_KEYS'], 'TOKEN_ENCRYPTION_KEYS must hold at least one key');
  return cipher;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  let parsed: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      args: rest,
      options: {
        'dry-run': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        ahead: { type: 'string' },
        'no-retention': { type: 'boolean', default: false },
        'drop-imported': { type: 'boolean', default: false },
        'keep-imported': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      allowPositionals: command === 'retention',
    });
  }
  try {
    parsed = parse();
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
    return 64;
  }
  const { values, positionals } = parsed;
  if (
    !command ||
    values.help ||
    !['migrate', 'status', 'partitions', 'retention', 'tokens'].includes(command)
  ) {
    process.stderr.write(`${USAGE}\n`);
    return command && !values.help ? 64 : 0;
  }
  if (
    command === 'retention' &&
    (![0, 2].includes(positionals.length) || (values['drop-imported'] && values['keep-imported']))
  ) {
    process.stderr.write(
      `retention takes no arguments, or TABLE and DAYS|forever (with at most one of --drop-imported, --keep-imported)\n\n${USAGE}\n`,
    );
    return 64;
  }
  const config = loadConfig({
    DATABASE_URL: commonEnv.DATABASE_URL,
    MIGRATION_LOCK_TIMEOUT_MS: env.int(
      'How long a migration waits for a table lock before it fails (0 waits forever)',
      DEFAULT_MIGRATION_LOCK_TIMEOUT_MS,
      { min: 0 },
    ),
  });
  const cipher = command === 'tokens' ? tokenCipherFromEnv() : null;
  const sql = createSql({ url: config.DATABASE_URL, applicationName: 'spywatcher-migrator-cli', max: 2 });
  const log = (line: string) => process.stdout.write(`${line}\n`);
  try {
    if (command === 'migrate') {
      if (!values['dry-run'] && (await ensureDatabase(config.DATABASE_URL, 'spywatcher-migrator-cli'))) {
        log(`created database ${databaseNameOf(config.DATABASE_URL)}`);
      }
      log(`migrating ${redactUrl(config.DATABASE_URL)}`);
      const result = await migrate({
        sql,
        dir: MIGRATIONS_DIR,
        dryRun: values['dry-run'],
        log,
        lockTimeoutMs: config.MIGRATION_LOCK_TIMEOUT_MS,
      });
      if (values['dry-run']) {
        if (result.planned.length + result.plannedRepeatables.length === 0) log('nothing to apply');
        for (const p of result.planned) {
          log(
            `would apply ${pad(p.version)}_${p.name}.sql${p.noTransaction ? ' (outside a transaction)' : ''}`,
          );
        }
        for (const r of result.plannedRepeatables) log(`would apply ${r.file} (${r.state})`);
      } else {
        log(
          `${result.applied.length} migration(s) and ${result.repeatables.length} repeatable migration(s) applied`,
        );
      }
    } else if (command === 'tokens' && cipher) {
      const r = await rotateTokens(sql, cipher);
      log(
        `tokens: ${r.reencrypted} user(s) re-encrypted under key "${cipher.currentKeyId}" (${r.fromClear} were in clear), ${r.current} already under it`,
      );
      if (r.unknownKeys.length > 0) {
        log(
          `tokens: rows under key(s) ${r.unknownKeys.join(', ')} were left as they are: add those keys to TOKEN_ENCRYPTION_KEYS (after the current one) and run again`,
        );
        return 1;
      }
      log(
        r.validated
          ? 'tokens: no token is stored in clear (constraint validated)'
          : 'tokens: some tokens are still in clear',
      );
    } else if (command === 'status') {
      const rows = await migrationStatus({ sql, dir: MIGRATIONS_DIR });
      const repeatables = await repeatableStatus({ sql, dir: MIGRATIONS_DIR });
      if (values.json) log(JSON.stringify({ migrations: rows, repeatables }, null, 2));
      else {
        const applied = (r: {
          appliedAt: string | null;
          appliedBy: string | null;
          durationMs: number | null;
        }) => (r.appliedAt ? `  applied ${r.appliedAt} by ${r.appliedBy} in ${r.durationMs} ms` : '');
        for (const r of rows) log(`${r.state.padEnd(8)} ${pad(r.version)}_${r.name}.sql${applied(r)}`);
        for (const r of repeatables) log(`${r.state.padEnd(8)} ${r.file}${applied(r)}`);
        const bad = rows.filter((r) => r.state === 'changed' || r.state === 'missing');
        if (bad.length > 0) return 1;
      }
    } else if (command === 'retention') {
      return await retention(sql, positionals, values, log);
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

async function retention(
  sql: Sql,
  args: string[],
  flags: { 'drop-imported': boolean; 'keep-imported': boolean },
  log: (line: string) => void,
): Promise<number> {
  if (args.length === 2) {
    const [table, days] = args as [string, string];
    if (days !== 'forever' && !/^[0-9]+$/.test(days)) {
      process.stderr.write(
        `error: DAYS must be a whole number of days or forever, got ${JSON.stringify(days)}\n`,
      );
      return 64;
    }
    const dropImported = flags['drop-imported'] ? true : flags['keep-imported'] ? false : undefined;
    try {
      await setRetention(sql, table, days === 'forever' ? null : Number(days), dropImported);
    } catch (error) {
      if (!(error instanceof RetentionError)) throw error;
      process.stderr.write(`error: ${error.message}\n`);
      return 64;
    }
  }
  for (const p of await partitionPolicies(sql)) {
    const keep = p.retentionDays === null ? 'forever' : `${p.retentionDays} days`;
    const imported =
      p.retentionDays === null ? '' : p.dropImported ? ', imported history too' : ', imported history kept';
    log(`${p.table.padEnd(24)} ${p.period.padEnd(6)} keep ${keep}${imported}`);
  }
  return 0;
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
