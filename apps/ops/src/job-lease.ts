import type { Sql } from '@spywatcher/db';
import type { JobRow } from './jobs.ts';

/** Something a job creates outside its row, removed by whoever finds the job dead. */
export type Scratch =
  | { kind: 'database'; name: string }
  | { kind: 'file'; path: string }
  /** A database a restore made read-only while it took the safety backup and swapped. */
  | { kind: 'read-only'; name: string };

/** Renews the heartbeat of the given running jobs (those of this process). */
export async function heartbeatJobs(sql: Sql, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await sql`
    update ops_jobs set heartbeat_at = now()
    where id = any(${ids}::uuid[]) and status = 'running'
  `;
}

/** True when `owner` (host:pid:…) names a process on this host that no longer exists. */
export function ownerIsGone(owner: string | null, host: string): boolean {
  if (!owner) return false;
  const [ownerHost, pid] = owner.split(':');
  if (ownerHost !== host || !pid || !/^\d+$/.test(pid)) return false;
  if (Number(pid) === process.pid) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (error) {
    return (error as { code?: string }).code === 'ESRCH';
  }
}

/**
 * The abandon rule: a running job is failed, with the reason, when its heartbeat is older than
 * `staleMs`, or at once when its owner was a process on this host that has died. Jobs of this
 * process (`exceptIds`) are never touched. Returns the ids it failed.
 */
export async function abandonStaleJobs(
  sql: Sql,
  o: { staleMs: number; exceptIds: string[]; host: string },
): Promise<string[]> {
  const candidates = await sql<{ id: string; owner: string | null; stale: boolean; age_s: number }[]>`
    select id, owner,
           coalesce(heartbeat_at, updated_at) < now() - ${o.staleMs} * interval '1 millisecond' as stale,
           extract(epoch from now() - coalesce(heartbeat_at, updated_at))::float8 as age_s
    from ops_jobs
    where status = 'running' and not (id = any(${o.exceptIds}::uuid[]))
  `;
  const failed: string[] = [];
  for (const c of candidates) {
    const gone = ownerIsGone(c.owner, o.host);
    if (!c.stale && !gone) continue;
    const reason = gone
      ? `abandoned: the ops process that ran it (${c.owner}) is gone (stopped or killed)`
      : `abandoned: no heartbeat from ${c.owner ?? 'its ops instance'} for ${Math.round(c.age_s)} s (stopped, killed or cut off)`;
    // compare-and-set on status: two instances noticing at once fail it once
    const rows = await sql`
      update ops_jobs set status = 'failed', error = ${reason}, finished_at = now(), updated_at = now()
      where id = ${c.id} and status = 'running' returning id
    `;
    if (rows.length > 0) failed.push(c.id);
  }
  return failed;
}

/** Finished jobs whose scratch list is not empty: their leftovers still need removing. */
export async function leftoverScratch(sql: Sql): Promise<(JobRow & { scratch: Scratch[] })[]> {
  return sql<(JobRow & { scratch: Scratch[] })[]>`
    select * from ops_jobs where status <> 'running' and scratch <> '[]'::jsonb
  `;
}
