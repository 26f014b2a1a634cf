import { databaseNameOf, partitionUpkeep, type Sql } from '@spywatcher/db';
import { type BackupEnv, createBackup, verifyBackup } from './backups.ts';
import { type BackupManifest, type RetentionPolicy, retentionVictims } from './catalogue.ts';
import { DEFAULT_THRESHOLDS, type HealthThresholds, healthReport } from './health.ts';
import { type Job, JobConflictError, type JobRunner, type JobTrigger } from './jobs.ts';
import { type MaintenanceKind, planMaintenance, runMaintenance } from './maintenance.ts';
import { checkRestoreRequest, type RestoreDeps, type RestoreRequest, restoreBackup } from './restore.ts';

export interface OpsOptions {
  sql: Sql;
  runner: JobRunner;
  backups: BackupEnv;
  retention: RetentionPolicy;
  thresholds?: HealthThresholds;
  /** Finished job records older than this are removed by the retention job. */
  jobKeepDays?: number;
  /** Writer fence and replay around restores (default: no fence, a live restore needs none). */
  restore?: RestoreDeps;
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
  readonly restoreDeps: RestoreDeps;

  constructor(options: OpsOptions) {
    this.restoreDeps = options.restore ?? { requiredIngestInstances: 0, replayMarginMs: 300_000 };
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
        // the backup is written: a retention problem is reported, it does not fail the backup
        const retention = await this.applyRetention(ctx.signal).catch((error: Error) => ({
          deleted: [] as string[],
          offsiteDeleted: [] as string[],
          error: error.message,
        }));
        return { backup: manifest, retention };
      },
    );
  }

  async startVerify(trigger: JobTrigger, backupId?: string, requestedBy?: string): Promise<Started> {
    const id =
      backupId ??
      (await this.catalogue.list()).find((b) => b.database === this.database && b.kind !== 'safety')?.id;
    if (!id) throw new NotFound(`there is no backup of ${this.database} to verify`);
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
      (ctx) => restoreBackup(this.backups, this.restoreDeps, request, ctx),
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
    return this.runner.start({ kind: 'retention', trigger, exclusiveKey: 'retention' }, async (ctx) => {
      const { deleted, offsiteDeleted } = await this.applyRetention(ctx.signal);
      const jobs = await this.sql`
        delete from ops_jobs
        where status <> 'running' and finished_at < now() - ${this.jobKeepDays} * interval '1 day'
      `;
      return { deleted, offsiteDeleted, jobRecordsDeleted: jobs.count };
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
    // a broken manifest is deleted with its file; it names no off-site copy we could trust
    const manifest = await this.catalogue.get(id).catch(() => null);
    if (manifest?.offsite) await this.backups.offsite?.remove(manifest);
    return this.catalogue.delete(id);
  }

  health(thresholds?: Partial<HealthThresholds>) {
    return healthReport(this.sql, this.catalogue, { ...this.thresholds, ...thresholds });
  }

  /** The live database's name (backups and health are per database). */
  get database(): string {
    return databaseNameOf(this.backups.databaseUrl);
  }

  /**
   * Local retention per database and kind (off-site copies stay: they have their own rule),
   * then off-site retention by age, sparing the copies of backups still kept locally.
   */
  private async applyRetention(
    signal?: AbortSignal,
  ): Promise<{ deleted: string[]; offsiteDeleted: string[] }> {
    const victims: BackupManifest[] = retentionVictims(await this.catalogue.list(), this.retention);
    const deleted: string[] = [];
    for (const v of victims) {
      if (await this.isInUse(v.id)) continue;
      if (await this.catalogue.delete(v.id)) deleted.push(v.id);
    }
    const offsite = this.backups.offsite;
    if (!offsite) return { deleted, offsiteDeleted: [] };
    const keep = new Set((await this.catalogue.list()).flatMap((b) => (b.offsite ? [b.offsite.key] : [])));
    return { deleted, offsiteDeleted: await offsite.applyRetention(keep, signal) };
  }

  private async isInUse(id: string): Promise<boolean> {
    const [busy] = await this.sql`
      select 1 from ops_jobs where status = 'running' and params->>'backupId' = ${id} limit 1
    `;
    return busy !== undefined;
  }
}

export class NotFound extends Error {}
export { JobConflictError };
