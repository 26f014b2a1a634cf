import { statfs } from 'node:fs/promises';
import { Gauge, oncePerScrape, type Registry } from '@spywatcher/service';

interface DiskUsage {
  path: string;
  sizeBytes: number;
  freeBytes: number;
}

async function readDisks(paths: readonly string[]): Promise<DiskUsage[]> {
  const out: DiskUsage[] = [];
  for (const path of paths) {
    try {
      const s = await statfs(path);
      // bavail: the blocks an unprivileged writer (pg_dump, PostgreSQL) can still use.
      out.push({ path, sizeBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize });
    } catch {
      // a path that is missing or unreadable has no samples (DiskPathUnreadable alerts on that)
    }
  }
  return out;
}

/**
 * Size and free space of the file systems holding the given paths: BACKUP_DIR always, and what
 * OPS_DISK_PATHS adds (e.g. PostgreSQL's data directory mounted read-only into the ops container).
 */
export function registerDiskMetrics(registry: Registry, paths: readonly string[]): void {
  const unique = [...new Set(paths)];
  const load = oncePerScrape(() => readDisks(unique), [] as DiskUsage[]);
  const gauge = (name: string, help: string, value: (d: DiskUsage) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['path'],
      registers: [registry],
      async collect() {
        const disks = await load();
        this.reset();
        for (const d of disks) this.set({ path: d.path }, value(d));
      },
    });
  gauge('spywatcher_disk_size_bytes', 'Size of the file system holding the path', (d) => d.sizeBytes);
  gauge(
    'spywatcher_disk_free_bytes',
    'Bytes still free for unprivileged writers on the file system holding the path',
    (d) => d.freeBytes,
  );
  new Gauge({
    name: 'spywatcher_disk_paths',
    help: 'Paths whose file systems ops reports (1 each), readable or not',
    labelNames: ['path'],
    registers: [registry],
    collect() {
      for (const path of unique) this.set({ path }, 1);
    },
  });
}
