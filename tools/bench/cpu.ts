import { readdirSync, readFileSync } from 'node:fs';
import type { Sql } from '@spywatcher/db';

// CPU time from /proc, for the benchmarks: the machine is shared, so CPU time compares two designs
// where wall time cannot.

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const TICKS_PER_S = 100;
const TICK_MS = 1000 / TICKS_PER_S;

/** utime + stime of a process (all its threads), in clock ticks; null once it is gone. */
function cpuTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces: count fields after its closing parenthesis
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/**
 * CPU seconds used by one command and by the PostgreSQL backends serving one database (and
 * their parallel workers), sampled from /proc while they run: the machine is shared, so CPU time
 * compares two designs where wall time cannot. A backend's last sample may miss up to one
 * interval of its CPU.
 */
export class CpuMeter {
  private readonly ticks = new Map<number, number>();
  private readonly backends = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private child: number | undefined;
  private childTicks = 0;

  private readonly database: string;

  constructor(database: string) {
    this.database = database;
  }

  start(child: number, intervalMs = 100): void {
    this.child = child;
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): void {
    if (this.child !== undefined) this.childTicks = Math.max(this.childTicks, cpuTicks(this.child) ?? 0);
    for (const name of readdirSync('/proc')) {
      const pid = Number(name);
      if (!Number.isInteger(pid)) continue;
      if (!this.ticks.has(pid)) {
        const cmd = cmdline(pid);
        if (!cmd.startsWith('postgres: ')) continue;
        const leader = /parallel worker for PID (\d+)/.exec(cmd);
        const ours = cmd.includes(` ${this.database} `) || (leader && this.backends.has(Number(leader[1])));
        if (!ours) continue;
        this.backends.add(pid);
      }
      const t = cpuTicks(pid);
      if (t !== null) this.ticks.set(pid, Math.max(this.ticks.get(pid) ?? 0, t));
    }
  }

  /** Stops sampling: CPU seconds of the command and of the database's backends. */
  stop(): { command: number; postgres: number } {
    clearInterval(this.timer);
    let pg = 0;
    for (const t of this.ticks.values()) pg += t;
    return { command: this.childTicks / TICKS_PER_S, postgres: pg / TICKS_PER_S };
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
      const t = cpuTicks(pid);
      if (t === null) continue;
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
