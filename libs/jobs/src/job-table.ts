import type { Sql } from '@spywatcher/db';
import { ownerName, ownerProcessGone } from './owner.ts';

/** The statuses of a job that has not ended; the heartbeat and the abandon rule look at these only. */
const ACTIVE = ['queued', 'running'];

/** The columns every job table has (see README.md); the rest of a row is the kind's own. */
export interface JobColumns {
  id: string;
  status: string;
  error: string | null;
  owner: string | null;
  heartbeat_at: Date | null;
  cancel_requested_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

export interface JobTableOptions {
  sql: Sql;
  /** The table holding the jobs (it has the common columns). */
  table: string;
  /** Names the kind of process in abandon reasons: "no heartbeat from its <label> instance". */
  label: string;
  /** This instance's name in the owner column (default host:pid:random). */
  owner?: string;
}

/** What a job ends as: `failed` and `cancelled` carry the error; `set` writes the kind's own columns. */
export interface JobEnd {
  status: 'succeeded' | 'failed' | 'cancelled';
  error?: string | null;
  set?: Record<string, unknown>;
}

/**
 * The lifecycle of jobs kept as rows of one table: create or claim a row under this instance's
 * name, renew its heartbeat, record progress, finish it, ask for its cancel, and the abandon rule.
 * Every write to a job is guarded by its status, so a job another instance declared abandoned
 * stays failed whatever its old owner writes afterwards.
 */
export class JobTable {
  readonly sql: Sql;
  readonly table: string;
  readonly label: string;
  readonly owner: string;

  constructor(options: JobTableOptions) {
    this.sql = options.sql;
    this.table = options.table;
    this.label = options.label;
    this.owner = options.owner ?? ownerName();
  }

  /** Inserts a job owned by this instance, its heartbeat now (status from `values`, else the table's default). */
  async create<R extends JobColumns = JobColumns>(values: Record<string, unknown>): Promise<R> {
    const sql = this.sql;
    const table = sql(this.table);
    const [row] = await sql.begin(async (tx) => {
      const [created] = await tx<{ id: string }[]>`
        insert into ${table} ${sql({ ...values, owner: this.owner })} returning id
      `;
      // the database's clock, like every later heartbeat and the abandon rule
      return tx<R[]>`update ${table} set heartbeat_at = now() where id = ${created!.id} returning *`;
    });
    return row as R;
  }

  /** Takes a queued job to `running` under this instance; false when it is not queued any more. */
  async claim(id: string): Promise<boolean> {
    const sql = this.sql;
    const rows = await sql`
      update ${sql(this.table)}
      set status = 'running', owner = ${this.owner}, heartbeat_at = now(),
          started_at = coalesce(started_at, now()), updated_at = now()
      where id = ${id} and status = 'queued'
      returning id
    `;
    return rows.length > 0;
  }

  /**
   * Renews the heartbeat of the given jobs (those this instance runs) and returns the ones whose
   * cancel was requested meanwhile.
   */
  async heartbeat(ids: string[]): Promise<{ cancelRequested: string[] }> {
    if (ids.length === 0) return { cancelRequested: [] };
    const sql = this.sql;
    const rows = await sql<{ id: string; cancel: boolean }[]>`
      update ${sql(this.table)} set heartbeat_at = now()
      where id = any(${ids}::uuid[]) and status = any(${ACTIVE}::text[])
      returning id, cancel_requested_at is not null as cancel
    `;
    return { cancelRequested: rows.filter((r) => r.cancel).map((r) => r.id) };
  }

  /** Writes a running job's progress (the kind's own columns); false when it has ended. */
  async progress(id: string, set: Record<string, unknown>): Promise<boolean> {
    if (Object.keys(set).length === 0) throw new Error('job progress: name at least one column to write');
    const sql = this.sql;
    const rows = await sql`
      update ${sql(this.table)} set ${sql(set)}, updated_at = now(), heartbeat_at = now()
      where id = ${id} and status = any(${ACTIVE}::text[])
      returning id
    `;
    return rows.length > 0;
  }

  /** Ends a job; false when it had already ended (another instance declared it abandoned). */
  async finish(id: string, end: JobEnd): Promise<boolean> {
    const sql = this.sql;
    const rows = await sql`
      update ${sql(this.table)}
      set ${sql({ ...end.set, status: end.status, error: end.error ?? null })},
          finished_at = now(), updated_at = now()
      where id = ${id} and status = any(${ACTIVE}::text[])
      returning id
    `;
    return rows.length > 0;
  }

  /**
   * Asks the owner of a job to cancel it: its next heartbeat sees the request. False when the
   * job has ended (or does not exist).
   */
  async requestCancel(id: string): Promise<boolean> {
    const sql = this.sql;
    const rows = await sql`
      update ${sql(this.table)} set cancel_requested_at = coalesce(cancel_requested_at, now())
      where id = ${id} and status = any(${ACTIVE}::text[])
      returning id
    `;
    return rows.length > 0;
  }

  /**
   * The abandon rule: a job of another owner whose heartbeat is older than `staleMs`, or whose
   * owner was a process on this host that has died, is failed with the reason. One UPDATE
   * decides it, so when several instances look at once each such job is failed exactly once and
   * returned to exactly one of them.
   */
  async abandon<R extends JobColumns = JobColumns>(staleMs: number): Promise<R[]> {
    const sql = this.sql;
    const gone = await this.goneOwners();
    return sql<R[]>`
      update ${sql(this.table)}
      set status = 'failed', finished_at = now(), updated_at = now(),
          error = case
            when owner = any(${gone}::text[])
              then format('abandoned: the %s process that ran it (%s) is gone (stopped or killed)',
                          ${this.label}::text, owner)
            else format('abandoned: no heartbeat from %s for %s s (stopped, killed or cut off)',
                        coalesce(owner, ${`its ${this.label} instance`}::text),
                        round(extract(epoch from now() - coalesce(heartbeat_at, updated_at))))
          end
      where status = any(${ACTIVE}::text[])
        and owner is distinct from ${this.owner}
        and (coalesce(heartbeat_at, updated_at) < now() - ${staleMs} * interval '1 millisecond'
             or owner = any(${gone}::text[]))
      returning *
    `;
  }

  /** Owners of unfinished jobs that were processes on this host and are gone. */
  private async goneOwners(): Promise<string[]> {
    const sql = this.sql;
    const rows = await sql<{ owner: string }[]>`
      select distinct owner from ${sql(this.table)}
      where status = any(${ACTIVE}::text[]) and owner is not null and owner <> ${this.owner}
    `;
    return rows.map((r) => r.owner).filter((owner) => ownerProcessGone(owner));
  }
}
