import { partitionUpkeep, type Sql } from '@spywatcher/db';
import { type BackupEnv, createBackup, verifyBackup } from './backups.ts';
import { type BackupManifest, type RetentionPolicy, retentionVictims } from './catalogue.ts';
import { DEFAULT_THRESHOLDS, type HealthThresholds, healthReport } from './health.ts';
import { type Job, JobConflictError, type JobRunner, type JobTrigger } from './jobs.ts';
import { type MaintenanceKind, planMaintenance, runMaintenance } from './maintenance.ts';
import { checkRestoreRequest, type RestoreRequest, restoreBackup } from './restore.ts';

export interface OpsOptions {
  sql: Sql;
  runner: JobRunner;
  backups: BackupEnv;
  retention: RetentionPolicy;
  thresholds?: HealthThresholds;
  /** Finished job records older than this are removed by the retention job. */
  jobKeepDays?: number;
}

export interface Started {
  job: Job;
  done: Promise<Job>;
}

export class BackupInUseError extends Error {}

/**
 * Every operation the HTTP routes, NATS requests, the schedule and the CLI can start. Checks
 * that can fail fast (a bad target, an unknown table) throw before a job is created.
 */
export class Ops {
  readonly sql: Sql;
  readonly runner: JobRunner;
  readonly backups: BackupEnv;
  readonly retention: RetentionPolicy;
  readonly thresholds: HealthThresholds;
  readonly jobKeepDays: number;

  constructor(options: OpsOptions) {
    this.sql = options.sql;
    this.runner = options.runner;
    this.backups = options.backups;
    this.retention = options.retention;
    this.thresholds = options.thresholds ?? DEFAULT_THRESHOLDS;
    this.jobKeepDays = options.jobKeepDays ?? 90;
  }

  get catalogue() {
    return this.backups.catalogue;
  }

  /** A backup, then retention (which never removes the backup just taken). */
  startBackup(trigger: JobTrigger, requestedBy?: string): Promise<Started> {
    return this.runner.start(
      { kind: 'backup', trigger, exclusiveKey: 'backup', requestedBy },
      async (ctx) => {
        const manifest = await createBackup(
          this.backups,
          { url: this.backups.databaseUrl, sql: this.sql },
          ctx,
        );
        ctx.progress(98, 'applying retention');
        const deleted = await this.applyRetention();
        return { backup: manifest, retention: { deleted } };
      },
    );
  }

  async startVerify(trigger: JobTrigger, backupId?: string, requestedBy?: string): Promise<Started> {
    const id = backupId ?? (await this.catalogue.list())[0]?.id;
    if (!id) throw new NotFound('there is no backup to verify');
    if (!(await this.catalogue.get(id))) throw new NotFound(`backup ${id} not found`);
    return this.runner.start(
      { kind: 'verify', trigger, exclusiveKey: `verify:${id}`, params: { backupId: id }, requestedBy },
      (ctx) =>
        verifyBackup(this.backups, id, ctx).then((v) => {
          if (!v.ok) throw new Error(`backup ${id} failed verification: ${v.problems.join('; ')}`);
          return { backupId: id, verification: v };
        }),
    );
  }

  async startRestore(trigger: JobTrigger, request: RestoreRequest, requestedBy?: string): Promise<Started> {
    this.catalogue.checkId(request.backupId);
    await checkRestoreRequest(this.backups, request);
    return this.runner.start(
      {
        kind: 'restore',
        trigger,
        exclusiveKey: `restore:${request.target}`,
        params: {
          backupId: request.backupId,
          target: request.target,
          confirmed: request.confirm === request.target,
        },
        requestedBy,
      },
      (ctx) => restoreBackup(this.backups, request, ctx),
    );
  }

  async startMaintenance(
    trigger: JobTrigger,
    kind: MaintenanceKind,
    tables?: string[],
    requestedBy?: string,
  ): Promise<Started> {
    // planned up front so an unknown table is a 400, not a failed job
    await planMaintenance(this.sql, kind, tables);
    return this.runner.start(
      {
        kind: `maintenance:${kind}`,
        trigger,
        exclusiveKey: `maintenance:${kind}`,
        params: { tables: tables ?? [] },
        requestedBy,
      },
      async (ctx) => runMaintenance(this.sql, await planMaintenance(this.sql, kind, tables), ctx),
    );
  }

  planMaintenance(kind: MaintenanceKind, tables?: string[]) {
    return planMaintenance(this.sql, kind, tables);
  }

  /** Backup retention, and finished job records older than `jobKeepDays`. */
  startRetention(trigger: JobTrigger): Promise<Started> {
    return this.runner.start({ kind: 'retention', trigger, exclusiveKey: 'retention' }, async () => {
      const deleted = await this.applyRetention();
      const jobs = await this.sql`
        delete from ops_jobs
        where status <> 'running' and finished_at < now() - ${this.jobKeepDays} * interval '1 day'
      `;
      return { deleted, jobRecordsDeleted: jobs.count };
    });
  }

  startPartitionUpkeep(trigger: JobTrigger): Promise<Started> {
    return this.runner.start({ kind: 'partitions', trigger, exclusiveKey: 'partitions' }, async () => ({
      actions: await partitionUpkeep(this.sql),
    }));
  }

  /** Refused while a verify or restore job reads the file. */
  async deleteBackup(id: string): Promise<boolean> {
    this.catalogue.checkId(id);
    const [busy] = await this.sql<{ id: string }[]>`
      select id from ops_jobs where status = 'running' and params->>'backupId' = ${id} limit 1
    `;
    if (busy)
      throw new BackupInUseError(`backup ${id} is in use by job ${busy.id}; try again when it has finished`);
    const manifest = await this.catalogue.get(id);
    if (manifest?.offsite) await this.backups.offsite?.remove(manifest);
    return this.catalogue.delete(id);
  }

  health(thresholds?: Partial<HealthThresholds>) {
    return healthReport(this.sql, this.catalogue, { ...this.thresholds, ...thresholds });
  }

  private async applyRetention(): Promise<string[]> {
    const victims: BackupManifest[] = retentionVictims(await this.catalogue.list(), this.retention);
    const deleted: string[] = [];
    for (const v of victims) {
      try {
        if (await this.deleteBackup(v.id)) deleted.push(v.id);
      } catch (error) {
        if (!(error instanceof BackupInUseError)) throw error;
      }
    }
    return deleted;
  }
}

export class NotFound extends Error {}
export { JobConflictError };
