import { parseArgs } from 'node:util';
import { createSql, inLanes, redactUrl } from '@spywatcher/db';
import {
  largestFirst,
  type Projection,
  RebuildConflictError,
  type RebuildProgress,
  startRebuildJob,
} from '@spywatcher/projections';
import { ConfigError, commonEnv, loadConfig } from '@spywatcher/service';
import { findProjection, PROJECTIONS } from './projections/definitions.ts';

const USAGE = `usage: nx run search:rebuild -- --projection NAME [--batch-size N] [--concurrency N]
       nx run search:rebuild -- --all [--concurrency N]

Rebuilds a projection's read model from the start of the event log into new tables while the
current ones keep serving, then swaps them in atomically. Progress goes to stderr, the final
report (one JSON object per projection) to stdout. --concurrency: bulk-pass statements run at
once, each on its own connection and server core (default 2).

projections: ${PROJECTIONS.map((p) => p.name).join(', ')}
environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/spywatcher)`;

function progressBar(name: string, lines = false) {
  const tty = process.stderr.isTTY && !lines;
  let last = '';
  return (p: RebuildProgress) => {
    const ratio = p.eventsTotal > 0 ? Math.min(1, p.eventsDone / p.eventsTotal) : 0;
    const width = 30;
    const filled = Math.round(ratio * width);
    const line = `${name} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(ratio * 100)
      .toString()
      .padStart(3)}% ${p.eventsDone}/${p.eventsTotal} events · ${p.phase}`;
    if (line === last) return;
    last = line;
    process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
  };
}

async function main(argv: string[]): Promise<number> {
  let values: {
    projection?: string;
    all?: boolean;
    'batch-size'?: string;
    concurrency?: string;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        projection: { type: 'string' },
        all: { type: 'boolean', default: false },
        'batch-size': { type: 'string' },
        concurrency: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 64;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let targets: Projection[];
  if (values.all) targets = [...PROJECTIONS];
  else if (values.projection) {
    const p = findProjection(values.projection);
    if (!p) {
      process.stderr.write(`unknown projection "${values.projection}"\n${USAGE}\n`);
      return 64;
    }
    targets = [p];
  } else {
    process.stderr.write(`${USAGE}\n`);
    return 64;
  }
  const batchSize = values['batch-size'] ? Number(values['batch-size']) : undefined;
  if (batchSize !== undefined && !(Number.isInteger(batchSize) && batchSize > 0)) {
    process.stderr.write('--batch-size must be a positive whole number\n');
    return 64;
  }
  const concurrency = values.concurrency ? Number(values.concurrency) : 2;
  if (!(Number.isInteger(concurrency) && concurrency > 0 && concurrency <= 16)) {
    process.stderr.write('--concurrency must be a whole number from 1 to 16\n');
    return 64;
  }

  const config = loadConfig({ DATABASE_URL: commonEnv.DATABASE_URL });
  // Per rebuild (two at once with --all): one connection per bulk lane and one for its lock;
  // one more for progress and the tail.
  const sql = createSql({
    url: config.DATABASE_URL,
    applicationName: 'spywatcher-rebuild-cli',
    max: 2 * concurrency + 3,
  });
  process.stderr.write(`rebuilding on ${redactUrl(config.DATABASE_URL)}\n`);
  try {
    // --all: two projections at a time, largest first (a rebuild's serial steps leave a core to
    // the other); their progress then goes to stderr as lines rather than one redrawn bar.
    const lines = targets.length > 1;
    let failed = false;
    await inLanes(await largestFirst(sql, targets), lines ? 2 : 1, async (projection) => {
      if (failed) return;
      const { job, done } = await startRebuildJob(sql, projection, {
        batchSize,
        concurrency,
        onProgress: progressBar(projection.name, lines),
      });
      process.stderr.write(`job ${job.id} (${projection.name})\n`);
      const finished = await done;
      if (process.stderr.isTTY && !lines) process.stderr.write('\n');
      if (finished.status !== 'succeeded') {
        process.stderr.write(`rebuild of ${projection.name} failed: ${finished.error}\n`);
        failed = true;
        return;
      }
      process.stdout.write(`${JSON.stringify({ job: finished.id, ...finished.report })}\n`);
    });
    return failed ? 1 : 0;
  } catch (error) {
    if (error instanceof RebuildConflictError) {
      process.stderr.write(`${error.message}\n`);
      return 75;
    }
    throw error;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`rebuild failed: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
