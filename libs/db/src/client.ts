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
}

/**
 * Creates a postgres.js pool with the platform's conventions: UTC sessions, a named
 * application, a statement timeout, notices discarded (migrations emit many) and
 * bigint columns left as strings so positions never lose precision.
 */
export function createSql(options: SqlOptions): Sql {
  const connection: Record<string, string> = {
    application_name: options.applicationName,
    TimeZone: 'UTC',
  };
  if (options.statementTimeoutMs !== undefined) {
    connection.statement_timeout = String(options.statementTimeoutMs);
  }
  return postgres(options.url, {
    max: options.max ?? 10,
    prepare: !options.pgbouncer,
    idle_timeout: options.idleTimeoutS ?? 30,
    connect_timeout: options.connectTimeoutS ?? 10,
    onnotice: () => {},
    connection,
  }) as unknown as Sql;
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
