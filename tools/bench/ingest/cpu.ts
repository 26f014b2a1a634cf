import { readFileSync } from 'node:fs';
import type { Sql } from '@spywatcher/db';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const TICK_MS = 10;

function ticksOf(pid: number): number | undefined {
  try {
    // Fields after the command name (which may hold spaces, so split after its ')').
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime
  } catch {
    return undefined;
  }
}

export interface CpuSpent {
  node_ms: number;
  postgres_ms: number;
}

/**
 * CPU time spent by this process and by the PostgreSQL backends of one database (autovacuum
 * included) while `work` runs: a measure of cost that holds on a shared, busy machine where
 * wall time does not. Backends are sampled every 200 ms so one that exits midway still counts.
 */
export async function measureCpu<T>(
  sql: Sql,
  database: string,
  work: () => Promise<T>,
): Promise<[T, CpuSpent]> {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  async function sample(initial: boolean) {
    const rows = await sql<{ pid: number }[]>`select pid from pg_stat_activity where datname = ${database}`;
    for (const { pid } of rows) {
      const t = ticksOf(pid);
      if (t === undefined) continue;
      if (!first.has(pid)) first.set(pid, initial ? t : 0);
      last.set(pid, t);
    }
  }
  await sample(true);
  const node0 = process.cpuUsage();
  let done = false;
  const sampler = (async () => {
    while (!done) {
      await new Promise((r) => setTimeout(r, 200));
      await sample(false).catch(() => {});
    }
  })();
  try {
    const result = await work();
    const node = process.cpuUsage(node0);
    done = true;
    await sampler;
    await sample(false);
    let ticks = 0;
    for (const [pid, t] of last) ticks += t - (first.get(pid) ?? 0);
    return [result, { node_ms: Math.round((node.user + node.system) / 1000), postgres_ms: ticks * TICK_MS }];
  } finally {
    done = true;
  }
}
