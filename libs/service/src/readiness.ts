import type { NatsConnection } from '@nats-io/transport-node';
import { type Sql, standbyStatus } from '@spywatcher/db';
import { Gauge, type Registry } from 'prom-client';

/** Figures a check reports beside ok/failed (a replica's lag, say); shown in /ready's body. */
export type ReadinessDetails = Record<string, string | number | boolean | null>;

/** A dependency the service needs to do its work; throws when it is not usable. */
// biome-ignore lint/suspicious/noConfusingVoidType: most checks are `async () => { await probe }`, which return void
export type ReadinessCheck = () => Promise<void | ReadinessDetails>;

/** Rejects when `promise` has not settled within `ms`, naming `what`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export function postgresCheck(sql: Sql, timeoutMs = 2000): ReadinessCheck {
  return async () => {
    await withTimeout(sql`select 1`.execute(), timeoutMs, 'PostgreSQL');
  };
}

/**
 * A read pool that may point at a streaming replica: reports whether it is a standby, whether
 * WAL arrives and the replay lag, and fails when the lag is above `maxLagMs` (its reads would be
 * that stale). On a primary (no replica configured, or a promoted one) it only probes.
 */
export function standbyCheck(sql: Sql, maxLagMs: number, timeoutMs = 2000): ReadinessCheck {
  return async () => {
    const s = await withTimeout(standbyStatus(sql), timeoutMs, 'PostgreSQL (read pool)');
    if (s.lagMs !== null && s.lagMs > maxLagMs)
      throw new Error(`the replica is ${s.lagMs} ms behind its primary (more than ${maxLagMs} ms)`);
    return {
      standby: s.standby,
      receiving: s.receiving,
      replicationLagMs: s.lagMs,
      replayPendingBytes: s.replayPendingBytes,
    };
  };
}

export function natsCheck(nc: NatsConnection, timeoutMs = 2000): ReadinessCheck {
  return async () => {
    if (nc.isClosed()) throw new Error('NATS connection is closed');
    await withTimeout(nc.flush(), timeoutMs, 'NATS');
  };
}

/** Pool and connection gauges for /metrics, computed when scraped. */
export function registerDependencyMetrics(
  registry: Registry,
  deps: { sql?: Sql; nats?: NatsConnection; applicationName: string; poolMax?: number },
): void {
  if (deps.sql) {
    const sql = deps.sql;
    new Gauge({
      name: 'pg_pool_max_connections',
      help: "Configured size of this service's PostgreSQL pool",
      registers: [registry],
      collect() {
        this.set(deps.poolMax ?? 0);
      },
    });
    new Gauge({
      name: 'pg_pool_connections',
      help: "Server connections opened under this service's application_name, by state (from pg_stat_activity)",
      labelNames: ['state'],
      registers: [registry],
      async collect() {
        this.reset();
        try {
          const rows = await withTimeout(
            sql<{ state: string | null; n: number }[]>`
              select coalesce(state, 'unknown') as state, count(*)::int as n
              from pg_stat_activity where application_name = ${deps.applicationName} group by 1
            `.execute(),
            1000,
            'PostgreSQL',
          );
          for (const r of rows) this.set({ state: r.state ?? 'unknown' }, r.n);
        } catch {
          // unreachable database: the up gauge below says so
        }
      },
    });
    new Gauge({
      name: 'pg_up',
      help: '1 when PostgreSQL answered a probe at scrape time',
      registers: [registry],
      async collect() {
        try {
          await withTimeout(sql`select 1`.execute(), 1000, 'PostgreSQL');
          this.set(1);
        } catch {
          this.set(0);
        }
      },
    });
  }
  if (deps.nats) {
    const nc = deps.nats;
    let connected = true;
    // The status iterator ends when the connection closes.
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnecting') connected = false;
        else if (s.type === 'reconnect') connected = true;
      }
    })().catch(() => {});
    new Gauge({
      name: 'nats_connected',
      help: '1 when the NATS connection is open and not reconnecting',
      registers: [registry],
      collect() {
        this.set(connected && !nc.isClosed() && !nc.isDraining() ? 1 : 0);
      },
    });
  }
}
