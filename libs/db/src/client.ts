import net from 'node:net';
import postgres from 'postgres';

export type Sql = postgres.Sql<Record<string, never>>;
export type TransactionSql = postgres.TransactionSql<Record<string, never>>;
/** Either the pool or a transaction: query functions take this as their first argument. */
export type Queryable = Sql | TransactionSql;

export interface SqlOptions {
  /** postgres:// connection string. */
  url: string;
  /** Shown in pg_stat_activity so operators can tell the services apart. */
  applicationName: string;
  /** Pool size (connections). */
  max?: number;
  /** Server-side statement timeout in milliseconds; 0 disables it. */
  statementTimeoutMs?: number;
  /**
   * Behind PgBouncer in transaction pooling mode prepared statements cannot be used,
   * because consecutive statements may land on different server connections.
   */
  pgbouncer?: boolean;
  /** Seconds an idle connection stays open. */
  idleTimeoutS?: number;
  /** Seconds to wait for a connection to be established. */
  connectTimeoutS?: number;
  /**
   * Session settings sent when each connection starts (e.g. planner settings for one kind of
   * query), instead of a transaction that sets them on every use. Not through PgBouncer in
   * transaction mode, which does not pass them on.
   */
  settings?: Record<string, string>;
}

/**
 * Creates a postgres.js pool with the platform's conventions: UTC sessions, a named
 * application, a statement timeout, notices discarded (migrations emit many) and
 * bigint columns left as strings so positions never lose precision.
 */
export function createSql(options: SqlOptions): Sql {
  const connection: Record<string, string> = {
    ...options.settings,
    application_name: options.applicationName,
    TimeZone: 'UTC',
  };
  if (options.statementTimeoutMs !== undefined) {
    connection.statement_timeout = String(options.statementTimeoutMs);
  }
  const connectTimeoutS = options.connectTimeoutS ?? 10;
  return postgres(options.url, {
    max: options.max ?? 10,
    prepare: !options.pgbouncer,
    idle_timeout: options.idleTimeoutS ?? 30,
    connect_timeout: connectTimeoutS,
    backoff: reconnectDelayS,
    onnotice: () => {},
    connection,
    socket: (o: SocketTarget) => connectWithoutNagle(o, connectTimeoutS * 1000),
  } as postgres.Options<Record<string, never>>) as unknown as Sql;
}

/**
 * Seconds before the pool's next connection attempt after `retries` failed ones. postgres.js
 * grows this to 20 s (3^retries / 100) and counts every failure of an outage, so the first
 * query after the database is back could wait that long; capped at 1 s, recovery is prompt.
 */
export function reconnectDelayS(retries: number): number {
  return (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, 1);
}

interface SocketTarget {
  host: string[];
  port: number[];
  path?: string | false;
}

/**
 * postgres.js opens plain sockets with Nagle's algorithm on. A COPY ends with a small
 * CopyDone message that Nagle holds back until the server ACKs the previous data, which the
 * server delays (~40 ms): every COPY round trip then costs ~40–90 ms instead of < 1 ms.
 * So we hand it sockets with TCP_NODELAY set, trying each host of the URL in turn.
 */
async function connectWithoutNagle(target: SocketTarget, timeoutMs: number): Promise<net.Socket> {
  const attempts: net.NetConnectOpts[] = target.path
    ? [{ path: target.path }]
    : target.host.map((host, i) => ({ host, port: target.port[i] ?? target.port[0] ?? 5432, noDelay: true }));
  for (const attempt of attempts.slice(0, -1)) {
    try {
      return await connected(net.connect(attempt), timeoutMs);
    } catch {
      // the next host
    }
  }
  // The last host's socket is handed over still connecting: postgres.js then sees a refusal as a
  // socket error and retries queued queries; a rejected promise would leave them waiting forever.
  return net.connect(attempts[attempts.length - 1]!);
}

function connected(socket: net.Socket, timeoutMs: number): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        Object.assign(new Error(`connect to PostgreSQL timed out after ${timeoutMs} ms`), {
          code: 'CONNECT_TIMEOUT',
        }),
      );
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Database name of a connection string (for messages and for deriving sibling databases). */
export function databaseNameOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
}

/** The same server with another database name. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/** Removes the password from a connection string so it can be logged or stored. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<invalid url>';
  }
}
