import type { Sql } from '@spywatcher/db';
import { Gauge, oncePerScrape, type Registry } from '@spywatcher/service';

interface Activity {
  replicas: { name: string; lagSeconds: number; lagBytes: number }[];
  slots: { slot: string; active: boolean; retainedBytes: number }[];
  transactions: { application: string; ageSeconds: number }[];
}

/** Reads replication state and the oldest open transactions of the database, once per scrape. */
async function readActivity(sql: Sql): Promise<Activity> {
  const [inRecovery] = await sql<{ yes: boolean }[]>`select pg_is_in_recovery() as yes`;
  // A standby has no WAL position of its own to compare with; its lag is measured on the primary.
  const replicas = inRecovery?.yes
    ? []
    : await sql<{ name: string; lag_seconds: number; lag_bytes: number }[]>`
        select coalesce(nullif(application_name, ''), client_addr::text, pid::text) as name,
          coalesce(extract(epoch from replay_lag), 0)::float8 as lag_seconds,
          coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::float8 as lag_bytes
        from pg_stat_replication
      `;
  const slots = inRecovery?.yes
    ? []
    : await sql<{ slot: string; active: boolean; retained_bytes: number }[]>`
        select slot_name as slot, active,
          coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::float8 as retained_bytes
        from pg_replication_slots
      `;
  // Client sessions of this database only: a transaction elsewhere does not hold back its vacuum.
  const transactions = await sql<{ application: string; age_seconds: number }[]>`
    select coalesce(nullif(application_name, ''), 'unknown') as application,
      max(extract(epoch from clock_timestamp() - xact_start))::float8 as age_seconds
    from pg_stat_activity
    where datname = current_database() and backend_type = 'client backend'
      and xact_start is not null and pid <> pg_backend_pid()
    group by 1
  `;
  return {
    replicas: replicas.map((r) => ({ name: r.name, lagSeconds: r.lag_seconds, lagBytes: r.lag_bytes })),
    slots: slots.map((s) => ({ slot: s.slot, active: s.active, retainedBytes: s.retained_bytes })),
    transactions: transactions.map((t) => ({ application: t.application, ageSeconds: t.age_seconds })),
  };
}

/**
 * Replication lag (seen from the primary), replication slots holding WAL, and the age of the
 * oldest open transaction per application: what the alert rules on replication and long
 * transactions read.
 */
export function registerActivityMetrics(registry: Registry, sql: Sql): void {
  const load = oncePerScrape(() => readActivity(sql), null);
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge, a: Activity) => void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const activity = await load();
        this.reset();
        if (activity) fill(this, activity);
      },
    });
  gauge('spywatcher_db_replicas', 'Standbys streaming from this server', [], (g, a) =>
    g.set(a.replicas.length),
  );
  gauge(
    'spywatcher_db_replication_lag_seconds',
    'Time a standby is behind in replaying WAL (0 when it has caught up)',
    ['replica'],
    (g, a) => {
      for (const r of a.replicas) g.set({ replica: r.name }, r.lagSeconds);
    },
  );
  gauge(
    'spywatcher_db_replication_lag_bytes',
    'WAL written on this server that a standby has not replayed yet',
    ['replica'],
    (g, a) => {
      for (const r of a.replicas) g.set({ replica: r.name }, r.lagBytes);
    },
  );
  gauge(
    'spywatcher_db_replication_slot_retained_bytes',
    'WAL kept on disk for a replication slot',
    ['slot'],
    (g, a) => {
      for (const s of a.slots) g.set({ slot: s.slot }, s.retainedBytes);
    },
  );
  gauge(
    'spywatcher_db_replication_slot_active',
    '1 when a consumer is connected to the replication slot',
    ['slot'],
    (g, a) => {
      for (const s of a.slots) g.set({ slot: s.slot }, s.active ? 1 : 0);
    },
  );
  gauge(
    'spywatcher_db_oldest_transaction_seconds',
    'Age of the oldest open transaction of the database, by application_name',
    ['application'],
    (g, a) => {
      for (const t of a.transactions) g.set({ application: t.application }, t.ageSeconds);
    },
  );
}
