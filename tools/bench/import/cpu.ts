import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_S = 100;

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
