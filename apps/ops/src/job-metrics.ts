import type { Sql } from '@spywatcher/db';
import { Gauge, oncePerScrape, type Registry } from '@spywatcher/service';

interface JobKindRow {
  kind: string;
  last_failed: boolean | null;
  last_success: number | null;
  running: number;
  failed_24h: number;
}

/**
 * Gauges over `ops_jobs`, read when Prometheus scrapes: they come from the table (not from
 * counters in memory) so a restart of ops does not hide a backup or a restore drill that failed.
 */
export function registerJobMetrics(registry: Registry, sql: Sql): void {
  const load = oncePerScrape(
    async () => [
      ...(await sql<JobKindRow[]>`
        select kind,
          (array_agg(status = 'failed' order by finished_at desc)
            filter (where status in ('succeeded', 'failed')))[1] as last_failed,
          extract(epoch from max(finished_at) filter (where status = 'succeeded'))::float8 as last_success,
          count(*) filter (where status = 'running')::int as running,
          count(*) filter (where status = 'failed' and finished_at > now() - interval '24 hours')::int
            as failed_24h
        from ops_jobs group by kind
      `),
    ],
    [] as JobKindRow[],
  );
  const gauge = (name: string, help: string, value: (r: JobKindRow) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ['kind'],
      registers: [registry],
      async collect() {
        const rows = await load();
        this.reset();
        for (const r of rows) {
          const v = value(r);
          if (v !== null) this.set({ kind: r.kind }, v);
        }
      },
    });
  gauge(
    'spywatcher_ops_job_last_failed',
    '1 when the newest finished job of the kind failed (a backup, a restore drill, ...), 0 when it succeeded',
    (r) => (r.last_failed === null ? null : r.last_failed ? 1 : 0),
  );
  gauge(
    'spywatcher_ops_job_last_success_timestamp_seconds',
    'Unix time the newest successful job of the kind finished',
    (r) => r.last_success,
  );
  gauge('spywatcher_ops_jobs_running', 'Jobs of the kind running now', (r) => r.running);
  gauge(
    'spywatcher_ops_jobs_failed_last_24h',
    'Jobs of the kind that failed in the last 24 hours',
    (r) => r.failed_24h,
  );
}
