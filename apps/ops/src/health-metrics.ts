import { Gauge, type Registry } from '@spywatcher/service';
import type { HealthReport } from './health.ts';

/**
 * The health report as Prometheus gauges. A scrape recomputes the report at most every
 * `maxAgeMs` (every gauge awaits the same refresh, so one scrape shows one report).
 */
export function registerHealthMetrics(
  registry: Registry,
  report: () => Promise<HealthReport>,
  maxAgeMs = 15_000,
) {
  let last: { at: number; report: HealthReport | null } | null = null;
  let inflight: Promise<void> | null = null;
  const gauges: Gauge[] = [];

  const refresh = async () => {
    if (last && Date.now() - last.at < maxAgeMs) return;
    inflight ??= report()
      .then((r) => apply(r))
      // a report that cannot be made (database away) shows as ok=0, never as a failed scrape
      .catch(() => {
        last = { at: Date.now(), report: last?.report ?? null };
        reportOk.set(0);
      })
      .finally(() => {
        inflight = null;
      });
    await inflight;
  };
  const gauge = (name: string, help: string, labelNames: string[] = []) => {
    const g = new Gauge({ name, help, labelNames, registers: [registry], collect: refresh });
    gauges.push(g);
    return g;
  };

  const size = gauge('spywatcher_db_size_bytes', 'Size of the database');
  const findings = gauge('spywatcher_db_health_findings', 'Health report findings by severity and check', [
    'severity',
    'check',
  ]);
  const connections = gauge('spywatcher_db_connections', 'Client connections by state', ['state']);
  const maxConnections = gauge('spywatcher_db_max_connections', 'max_connections');
  const cacheHit = gauge('spywatcher_db_cache_hit_ratio', 'Buffer cache hit ratio of the database');
  const xidAge = gauge(
    'spywatcher_db_xid_age',
    'Age of the oldest unfrozen transaction id (wraparound at ~2e9)',
  );
  const longQueries = gauge('spywatcher_db_long_queries', 'Queries running longer than HEALTH_LONG_QUERY_MS');
  const idleTx = gauge(
    'spywatcher_db_idle_in_transaction',
    'Sessions idle in a transaction longer than the threshold',
  );
  const blocked = gauge('spywatcher_db_blocked_sessions', 'Sessions waiting for a lock held by another');
  const dead = gauge('spywatcher_db_dead_tuples', 'Dead tuples per table (top 20)', ['table']);
  const bloat = gauge('spywatcher_db_table_bloat_bytes', 'Estimated bloat per table (top 20)', ['table']);
  const unused = gauge('spywatcher_db_unused_indexes', 'Indexes without scans (not PK/unique)');
  const ahead = gauge('spywatcher_db_partitions_ahead', 'Future partitions present per event table', [
    'table',
  ]);
  const expired = gauge(
    'spywatcher_db_partitions_expired',
    'Partitions past retention, waiting to be dropped',
    ['table'],
  );
  const reportOk = gauge('spywatcher_db_health_report_ok', '1 when the last health report could be made');
  const brokenManifests = gauge(
    'spywatcher_backup_broken_manifests',
    'Manifests in BACKUP_DIR that cannot be read (skipped)',
  );
  const backupAge = gauge(
    'spywatcher_backup_last_success_age_seconds',
    'Age of the newest backup of this database',
  );
  const verifiedAge = gauge(
    'spywatcher_backup_last_verified_age_seconds',
    'Age of the newest backup that passed verification',
  );

  function apply(r: HealthReport) {
    last = { at: Date.now(), report: r };
    for (const g of gauges) g.reset();
    reportOk.set(1);
    brokenManifests.set(r.backups.brokenManifests.length);
    size.set(r.sizes.databaseBytes);
    const counts = new Map<string, number>();
    for (const f of r.findings)
      counts.set(`${f.severity}|${f.check}`, (counts.get(`${f.severity}|${f.check}`) ?? 0) + 1);
    for (const [key, n] of counts) {
      const [severity, check] = key.split('|') as [string, string];
      findings.set({ severity, check }, n);
    }
    for (const [state, n] of Object.entries(r.connections.byState)) connections.set({ state }, n);
    maxConnections.set(r.connections.max);
    if (r.cacheHitRatio !== null) cacheHit.set(r.cacheHitRatio);
    xidAge.set(r.wraparound.databaseAge);
    longQueries.set(r.longQueries.length);
    idleTx.set(r.idleInTransaction.length);
    blocked.set(r.blockingLocks.length);
    for (const v of r.vacuum.slice(0, 20)) dead.set({ table: `${v.schema}.${v.table}` }, v.deadTuples);
    for (const b of r.bloat.tables) bloat.set({ table: `${b.schema}.${b.table}` }, b.bloatBytes);
    unused.set(r.unusedIndexes.indexes.length);
    for (const p of r.partitions) {
      ahead.set({ table: p.table }, p.ahead);
      expired.set({ table: p.table }, p.expired.length);
    }
    if (r.backups.lastSuccessAgeS !== null) backupAge.set(r.backups.lastSuccessAgeS);
    if (r.backups.lastVerifiedAgeS !== null) verifiedAge.set(r.backups.lastVerifiedAgeS);
  }

  return {
    /** Lets the HTTP route share its fresh report with the next scrape. */
    record: apply,
  };
}
