import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createSql, type Sql } from '@spywatcher/db';
import cliProgress from 'cli-progress';
import { type ImportReport, type ProgressEvent, runImport } from './import/importer.ts';
import {
  createRun,
  finishRun,
  importHeartbeat,
  importRuns,
  markRunning,
  progressRecorder,
} from './import/runs.ts';
import { ImportError, openLegacySource } from './import/source.ts';
import { createTokenCipher, parseTokenKeys, type TokenCipher } from './import/token-cipher.ts';

const USAGE = `usage: nx run migrator:import-sqlite -- --from FILE [options]
       (or: node apps/migrator/src/import-cli.ts --from FILE [options])

Imports a legacy SpyWatcher SQLite (Prisma) database into the event log. Safe to run again:
it continues where the last run stopped and never imports a row twice.

options:
  --from FILE          the legacy SQLite file (required)
  --dry-run            read, validate and convert every row; report; write nothing
  --no-verify          skip the row-count and content-hash comparison after the import
  --verify-only        only verify what earlier runs imported from FILE
  --max-rejects N      rejected rows allowed before the exit code says failure (default 0)
  --reject-file FILE   NDJSON file for rejected rows (default FILE.rejects.ndjson)
  --batch-rows N       rows per committed batch (default 5000)
  --concurrency N      event-table periods loaded at once (default 3)
  --workers N          worker threads converting event rows (default 2; 0: on the main thread)
  --json               print the report as one JSON line at the end

exit codes: 0 ok, 1 error, 2 bad configuration, 3 more rejects than --max-rejects,
            4 verification found differences, 64 bad usage
environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/spywatcher),
             TOKEN_ENCRYPTION_KEYS (encrypts the legacy OAuth tokens; unset: they are not imported)`;

function progressBars() {
  const tty = process.stderr.isTTY === true;
  if (!tty) return plainProgress();
  const multibar = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      format:
        '{table} |{bar}| {percentage}% | {value}/{total} rows | {speed} rows/s | ETA {eta_formatted} | rejected {rejected}',
      hideCursor: tty,
      clearOnComplete: false,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, { bar: cliProgress.SingleBar; started: number }>();
  return {
    onProgress(e: ProgressEvent) {
      const seconds = () => (performance.now() - (bars.get(e.table)?.started ?? performance.now())) / 1000;
      if (e.phase === 'start') {
        const bar = multibar.create(Math.max(e.total, 1), 0, {
          table: e.table.padEnd(19),
          speed: 0,
          rejected: 0,
        });
        bars.set(e.table, { bar, started: performance.now() });
        return;
      }
      const entry = bars.get(e.table);
      if (!entry) return;
      const s = seconds();
      entry.bar.update(e.done, { speed: s > 0 ? Math.round(e.done / s) : 0, rejected: e.rejected });
      if (e.phase === 'done') {
        entry.bar.setTotal(Math.max(e.done, 1));
        entry.bar.update(Math.max(e.done, 1));
      }
    },
    stop: () => multibar.stop(),
  };
}

/** Without a terminal (CI, logs): one line per table when it is done. */
function plainProgress() {
  const started = new Map<string, number>();
  return {
    onProgress(e: ProgressEvent) {
      if (e.phase === 'start') started.set(e.table, performance.now());
      if (e.phase !== 'done') return;
      const s = (performance.now() - (started.get(e.table) ?? performance.now())) / 1000;
      process.stderr.write(
        `${e.table}: ${e.done} rows in ${s.toFixed(1)} s (${s > 0 ? Math.round(e.done / s) : 0} rows/s), ${e.rejected} rejected\n`,
      );
    },
    stop: () => {},
  };
}

function printSummary(report: ImportReport): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out('');
  out(`${report.dryRun ? 'dry run of' : 'import of'} ${report.from} (source ${report.sourceKey})`);
  out(
    `${'table'.padEnd(20)}${'read'.padStart(10)}${(report.dryRun ? 'ok' : 'imported').padStart(10)}${'rejected'.padStart(10)}${'in total'.padStart(11)}  verification / findings`,
  );
  for (const t of report.tables) {
    const findings = Object.entries(t.findings)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    const v = t.verification
      ? t.verification.ok
        ? `ok (${t.verification.targetRows} rows, hash ${t.verification.targetHash})`
        : `MISMATCH: ${t.verification.message}`
      : '';
    out(
      `${t.table.padEnd(20)}${String(t.read).padStart(10)}${String(t.imported).padStart(10)}${String(report.dryRun ? t.rejected : t.totalRejected).padStart(10)}${String(t.totalImported).padStart(11)}  ${[v, findings].filter(Boolean).join('  ')}`,
    );
    for (const s of t.verification?.samples ?? []) {
      out(
        `    legacy id ${s.legacy_id}: source ${JSON.stringify(s.expected)} stored ${JSON.stringify(s.actual)}`,
      );
    }
  }
  out(
    `${report.rows} rows read in ${report.seconds} s (${report.rowsPerSecond} rows/s); ${report.imported} ${report.dryRun ? 'would be imported' : 'imported'}; ${report.rejected} rejected`,
  );
  if (report.rejectFile) out(`rejected rows: ${report.rejectFile}`);
  for (const r of report.rejectSamples.slice(0, 10))
    out(`  reject ${r.table} #${r.legacy_id}: ${r.reason}: ${r.detail}`);
  if (report.verified !== null) out(`verification: ${report.verified ? 'every table matches' : 'FAILED'}`);
  for (const w of report.warnings) out(`warning: ${w}`);
}

class ConfigError extends Error {}

/**
 * DATABASE_URL as every service reads it. The service kit is not loaded here: the CLI's
 * memory is part of what the import benchmark measures.
 */
function databaseUrl(): string {
  const raw = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/spywatcher';
  try {
    const u = new URL(raw);
    if (!/^postgres(ql)?:$/.test(u.protocol)) throw new Error('protocol');
  } catch {
    throw new ConfigError(`DATABASE_URL must be a postgres:// connection string, got ${JSON.stringify(raw)}`);
  }
  return raw;
}

/** TOKEN_ENCRYPTION_KEYS as the migrator service reads it (see apps/migrator/README.md). */
function tokenCipher(): TokenCipher | null {
  try {
    return createTokenCipher(parseTokenKeys(process.env.TOKEN_ENCRYPTION_KEYS ?? ''));
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
}

async function main(argv: string[]): Promise<number> {
  let values: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      args: argv,
      options: {
        from: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        'no-verify': { type: 'boolean', default: false },
        'verify-only': { type: 'boolean', default: false },
        'max-rejects': { type: 'string', default: '0' },
        'reject-file': { type: 'string' },
        'batch-rows': { type: 'string', default: '5000' },
        concurrency: { type: 'string', default: '3' },
        workers: { type: 'string', default: '2' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      allowPositionals: false,
    }).values;
  }
  try {
    values = parse();
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
    return 64;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const maxRejects = Number(values['max-rejects']);
  const batchRows = Number(values['batch-rows']);
  const concurrency = Number(values.concurrency);
  const workers = Number(values.workers);
  if (
    !values.from ||
    !Number.isInteger(maxRejects) ||
    maxRejects < 0 ||
    !Number.isInteger(batchRows) ||
    batchRows < 1 ||
    !Number.isInteger(concurrency) ||
    concurrency < 1 ||
    !Number.isInteger(workers) ||
    workers < 0 ||
    workers > 16
  ) {
    process.stderr.write(
      `--from FILE is required; --max-rejects, --batch-rows, --concurrency and --workers take whole numbers\n\n${USAGE}\n`,
    );
    return 64;
  }
  const dryRun = values['dry-run'];
  const tokens = tokenCipher();
  let sql: Sql | null = null;
  if (!dryRun) {
    sql = createSql({
      url: databaseUrl(),
      applicationName: 'spywatcher-import',
      // the advisory lock's connection, three lanes, and one for progress and verification samples
      max: 5,
      connectTimeoutS: 5,
    });
  }
  const bars = progressBars();
  const runId = randomUUID();
  const runs = sql ? importRuns(sql) : null;
  // started once the run is recorded; it also fails other instances' runs whose heartbeat stopped
  const heartbeat = runs ? importHeartbeat(runs, () => [runId]) : null;
  let recorder: ReturnType<typeof progressRecorder> | undefined;
  try {
    const options = {
      from: values.from,
      dryRun,
      verify: !values['no-verify'],
      verifyOnly: values['verify-only'],
      maxRejects,
      rejectFile: values['reject-file'],
      batchRows,
      concurrency,
      workers,
    };
    let report: ImportReport;
    try {
      // The file's problems come before the target's: check it first.
      openLegacySource(values.from).close();
      if (runs && !values['verify-only']) {
        // Record the run like an API job; a failure to reach the target surfaces here.
        const { checkTarget } = await import('./import/importer.ts');
        await checkTarget(runs.sql);
        await createRun(runs, {
          id: runId,
          sourcePath: values.from,
          dryRun,
          options: { ...options, via: 'cli' },
        });
        await markRunning(runs, runId);
        recorder = progressRecorder(runs, runId, 2000);
        heartbeat?.start();
      }
      report = await runImport(sql, {
        ...options,
        tokens,
        onProgress: (e) => {
          bars.onProgress(e);
          recorder?.onProgress(e);
        },
        log: (line) => process.stderr.write(`${line}\n`),
      });
    } finally {
      bars.stop();
    }
    if (recorder && runs) {
      await recorder.flush();
      await finishRun(runs, runId, { report });
    }
    printSummary(report);
    if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    return report.exitCode;
  } catch (error) {
    if (recorder && runs) await finishRun(runs, runId, { error: (error as Error).message }).catch(() => {});
    throw error;
  } finally {
    await heartbeat?.stop();
    await sql?.end({ timeout: 5 });
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof ImportError || error instanceof ConfigError) {
    process.stderr.write(`error: ${error.message}\n`);
    process.exitCode = error instanceof ConfigError ? 2 : 1;
  } else if (
    ['ECONNREFUSED', 'ENOTFOUND', 'CONNECT_TIMEOUT', 'EHOSTUNREACH'].includes(
      (error as { code?: string }).code ?? '',
    )
  ) {
    process.stderr.write(`error: cannot reach the target PostgreSQL: ${(error as Error).message}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`error: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  }
}
