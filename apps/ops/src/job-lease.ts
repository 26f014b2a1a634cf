import type { Sql } from '@spywatcher/db';
import type { JobColumns } from '@spywatcher/jobs';
import type { JobRow } from './jobs.ts';

/** Something a job creates outside its row, removed by whoever finds the job dead. */
export type Scratch =
  | { kind: 'database'; name: string }
  | { kind: 'file'; path: string }
  /** A database a restore made read-only while it took the safety backup and swapped. */
  | { kind: 'read-only'; name: string };

/** An ops_jobs row with the columns of the job lifecycle (@spywatcher/jobs) and its scratch list. */
export type LeasedJobRow = JobRow & JobColumns & { scratch: Scratch[] };

/** Finished jobs whose scratch list is not empty: their leftovers still need removing. */
export async function leftoverScratch(sql: Sql): Promise<LeasedJobRow[]> {
  return sql<LeasedJobRow[]>`
    select * from ops_jobs where status <> 'running' and scratch <> '[]'::jsonb
  `;
}
