import { parseArgs } from 'node:util';
import { createSql, redactUrl } from '@spywatcher/db';
import { DEFAULT_NATS_NAMES } from '@spywatcher/events';
import { ConfigError, commonEnv, loadConfig } from '@spywatcher/service';
import cliProgress from 'cli-progress';
import { opsEnv } from './config.ts';
import { toHttpError } from './http-errors.ts';
import type { Job } from './jobs.ts';
import { MAINTENANCE_KINDS, type MaintenanceKind } from './maintenance.ts';
import type { Started } from './ops.ts';
import { createOps } from './setup.ts';

const USAGE = `usage: node src/cli.ts <command> [options]

commands:
  backup [--verify]                         take a backup (and prove it restorable)
  verify [--backup ID]                      verify a backup (default: the newest)
  list                                      list backups, newest first
  restore --backup ID --target DB [--confirm DB]
                                            restore into DB (created, or replaced after a safety backup)
  maintenance <vacuum|analyze|reindex> [--tables a,b] [--dry-run]
  health [--json] [--long-query-ms N]       the database health report

exit status: 0 done, 1 failed (the reason on stderr), 2 health critical or bad configuration,
3 backup complete locally but its configured off-site copy failed, 64 usage.

environment: DATABASE_URL, BACKUP_DIR and the ops variables in apps/ops/README.md ("Settings").`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      verify: { type: 'boolean', default: false },
      backup: { type: 'string' },
      target: { type: 'string' },
      confirm: { type: 'string' },
      tables: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'long-query-ms': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: true,
  });
  const commands = ['backup', 'verify', 'list', 'restore', 'maintenance', 'health'];
  if (!command || values.help || !commands.includes(command)) {
    process.stderr.write(`${USAGE}\n`);
    return command && !values.help ? 64 : 0;
  }
  const config = {
    ...loadConfig({ DATABASE_URL: commonEnv.DATABASE_URL, LOG_LEVEL: commonEnv.LOG_LEVEL }),
    ...loadConfig(opsEnv),
  };
  const sql = createSql({
    url: config.DATABASE_URL,
    applicationName: 'spywatcher-ops-cli',
    max: 3,
    statementTimeoutMs: 0,
  });
  const interactive = process.stderr.isTTY && !values.json;
  const bar = new cliProgress.SingleBar(
    {
      format: ' {bar} {percentage}% | {message}',
      hideCursor: true,
      noTTYOutput: false,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
  let barJob: string | null = null;
  const onUpdate = (job: Job) => {
    if (!interactive) return;
    if (barJob !== job.id) {
      if (barJob) bar.stop();
      barJob = job.id;
      bar.start(100, 0, { message: `${job.kind} ${job.id}` });
    }
    bar.update(job.progress.percent, {
      message: `${job.kind}: ${(job.progress.message ?? '').slice(0, 70)}`,
    });
    if (job.status !== 'running') {
      bar.stop();
      barJob = null;
    }
  };
  const ops = createOps(config, {
    sql,
    names: { ...DEFAULT_NATS_NAMES, prefix: config.NATS_PREFIX },
    onUpdate,
  });
  const out = (line: string) => process.stdout.write(`${line}\n`);
  // a CLI job renews its heartbeat like a service's, so no ops instance takes it for abandoned
  ops.runner.startHeartbeat();
  const stopOnSignal = () => void ops.runner.stop();
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);

  const finish = async (started: Started): Promise<Job> => {
    const job = await started.done;
    if (job.status !== 'succeeded') process.stderr.write(`${job.kind} ${job.status}: ${job.error}\n`);
    return job;
  };

  try {
    await ops.catalogue.ensureDir();
    if (command === 'backup') {
      process.stderr.write(`backing up ${redactUrl(config.DATABASE_URL)} into ${ops.catalogue.dir}\n`);
      const job = await finish(await ops.startBackup('cli'));
      if (job.status !== 'succeeded') return 1;
      const { backup, retention } = job.result as {
        backup: {
          id: string;
          sizeBytes: number;
          totalRows: number;
          durationMs: number;
          offsiteError?: string;
        };
        retention: { deleted: string[]; error?: string };
      };
      out(
        `backup ${backup.id}: ${backup.totalRows} rows, ${backup.sizeBytes} bytes in ${backup.durationMs} ms`,
      );
      if (retention.deleted.length > 0) out(`retention removed ${retention.deleted.join(', ')}`);
      if (retention.error) process.stderr.write(`warning: retention failed: ${retention.error}\n`);
      if (backup.offsiteError) {
        // the local backup is good, but the off-site copy the configuration asks for is missing
        process.stderr.write(
          `error: backup ${backup.id} is complete locally, but its off-site copy failed: ${backup.offsiteError}\n`,
        );
        return 3;
      }
      if (values.verify) {
        const v = await finish(await ops.startVerify('cli', backup.id));
        if (v.status !== 'succeeded') return 1;
        out(`verified ${backup.id}: restorable, row counts and amcheck ok`);
      }
    } else if (command === 'verify') {
      const v = await finish(await ops.startVerify('cli', values.backup));
      if (v.status !== 'succeeded') return 1;
      out(JSON.stringify(v.result, null, 2));
    } else if (command === 'list') {
      const { backups, broken } = await ops.catalogue.scan();
      for (const m of broken) process.stderr.write(`skipped ${m.file}: ${m.error}\n`);
      for (const b of backups) {
        const verdict = b.verification
          ? b.verification.ok
            ? 'verified'
            : 'FAILED verification'
          : 'not verified';
        const kind = b.kind === 'safety' ? '  safety' : '';
        out(`${b.id}  ${b.database}${kind}  ${b.totalRows} rows  ${b.sizeBytes} bytes  ${verdict}`);
      }
    } else if (command === 'restore') {
      if (!values.backup || !values.target) {
        process.stderr.write('restore needs --backup ID and --target DB\n');
        return 64;
      }
      const job = await finish(
        await ops.startRestore('cli', {
          backupId: values.backup,
          target: values.target,
          confirm: values.confirm,
        }),
      );
      if (job.status !== 'succeeded') return 1;
      out(JSON.stringify(job.result, null, 2));
    } else if (command === 'maintenance') {
      const kind = positionals[0] as MaintenanceKind;
      if (!MAINTENANCE_KINDS.includes(kind)) {
        process.stderr.write(`maintenance needs a kind: ${MAINTENANCE_KINDS.join(', ')}\n`);
        return 64;
      }
      const tables = values.tables
        ?.split(',')
        .map((t) => t.trim())
        .filter(Boolean);
      const plan = await ops.planMaintenance(kind, tables);
      for (const s of plan.steps)
        out(`${values['dry-run'] ? 'would run' : 'will run'}: ${s.statement}  -- ${s.reason}`);
      if (plan.steps.length === 0) out('nothing to do');
      if (values['dry-run'] || plan.steps.length === 0) return 0;
      const job = await finish(await ops.startMaintenance('cli', kind, tables));
      return job.status === 'succeeded' ? 0 : 1;
    } else {
      const longQueryMs = values['long-query-ms'] ? Number(values['long-query-ms']) : undefined;
      const report = await ops.health(longQueryMs ? { longQueryMs } : {});
      if (values.json) out(JSON.stringify(report, null, 2));
      else {
        out(
          `${report.database}: ${report.status} (${report.findings.length} findings, ${report.durationMs} ms)`,
        );
        for (const f of report.findings)
          out(`[${f.severity}] ${f.check} ${f.subject}: ${f.message}\n    -> ${f.action}`);
      }
      return report.status === 'critical' ? 2 : 0;
    }
    return 0;
  } finally {
    if (barJob) bar.stop();
    await ops.runner.stop();
    await sql.end({ timeout: 5 });
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  const mapped = toHttpError(error) as { statusCode?: number; message?: string };
  if (error instanceof ConfigError || (mapped?.statusCode && mapped.statusCode < 500)) {
    process.stderr.write(`error: ${(mapped as Error).message ?? (error as Error).message}\n`);
    process.exitCode = error instanceof ConfigError ? 2 : 1;
  } else {
    process.stderr.write(`error: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  }
}
