import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { ConfigError, commonEnv, loadConfig } from '@spywatcher/service';
import { ingestEnv } from './config.ts';
import { replayDeadLetters } from './dead-letters.ts';

const USAGE = `usage: nx run ingest:replay-dead-letters -- [--type TYPE] [--since ISO-TIME] [--dry-run]

Re-submits dead-lettered events that are now valid to <prefix>.events.<type>, where ingest stores
them (an event already stored is answered duplicate). Letters still invalid are reported with their
errors; conflicts are skipped (send those again with a new id). Prints one JSON report.

  --type TYPE       only letters of this event type (default: every type)
  --since ISO-TIME  only letters dead-lettered at or after this time (default: all kept, 30 days)
  --dry-run         report what would be re-submitted, publish nothing

exit status: 0 done, 1 failed (the reason on stderr), 2 bad configuration, 64 usage.
environment: NATS_URL, NATS_STREAM, NATS_SUBJECT_PREFIX (apps/ingest/README.md, "Settings").`;

type Args = { type?: string; since?: Date; dryRun: boolean };

function parse(argv: string[]): Args | string {
  let values: { type?: string; since?: string; 'dry-run'?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        type: { type: 'string' },
        since: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    return (error as Error).message;
  }
  if (values.help) return '';
  if (values.type !== undefined && !/^[a-z_]+$/.test(values.type)) {
    return `--type must be an event type such as join or message, not "${values.type}"`;
  }
  const since = values.since === undefined ? undefined : new Date(values.since);
  if (since && Number.isNaN(since.getTime())) return `--since must be an ISO time, not "${values.since}"`;
  return { type: values.type, since, dryRun: values['dry-run'] ?? false };
}

async function main(argv: string[]): Promise<number> {
  const args = parse(argv);
  if (typeof args === 'string') {
    process.stderr.write(`${args ? `${args}\n\n` : ''}${USAGE}\n`);
    return args ? 64 : 0;
  }
  let config: { NATS_URL: string; NATS_STREAM: string; NATS_SUBJECT_PREFIX: string };
  try {
    config = {
      ...loadConfig({ NATS_URL: commonEnv.NATS_URL }),
      ...loadConfig({
        NATS_STREAM: ingestEnv.NATS_STREAM,
        NATS_SUBJECT_PREFIX: ingestEnv.NATS_SUBJECT_PREFIX,
      }),
    };
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const nc = await connect({
    servers: config.NATS_URL.split(',').map((s) => s.trim()),
    name: 'ingest-replay-dead-letters',
  });
  try {
    const report = await replayDeadLetters({
      nc,
      names: { prefix: config.NATS_SUBJECT_PREFIX, stream: config.NATS_STREAM },
      ...args,
    });
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return 0;
  } finally {
    await nc.drain();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`replay-dead-letters: ${(error as Error).message}\n`);
    process.exitCode = 1;
  },
);
