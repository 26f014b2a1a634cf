import type { NatsConnection } from '@nats-io/transport-node';
import { createSql, type Sql } from '@spywatcher/db';
import type { FastifyBaseLogger } from 'fastify';
import type { Registry } from 'prom-client';
import { type Auth, createAuth, parseTokenGrants } from './auth.ts';
import { ConfigError, type ConfigOf, commonEnv, env, loadConfig, type VarSpec } from './config.ts';
import { createLogger } from './logger.ts';
import { createMetricsRegistry } from './metrics.ts';
import { natsConnectionOptions, redactServers } from './nats-auth.ts';
import { connectNats } from './nats-connect.ts';
import { runService } from './run.ts';
import type { ServiceInstance } from './service.ts';
import { startWaitingService } from './waiting.ts';

type Spec = Record<string, VarSpec<unknown>>;

const serviceEnv = (name: string, defaultPort: number) => ({
  ...commonEnv,
  PORT: env.int(`HTTP port of the ${name} service`, defaultPort, { min: 0, max: 65535 }),
});
export type CommonConfig = ConfigOf<ReturnType<typeof serviceEnv>>;

/** What main.ts hands to a service's buildApp: real connections, built once. */
export interface ServiceRuntime<C> {
  config: C;
  sql: Sql;
  nats: NatsConnection;
  auth: Auth;
  metrics: Registry;
  logger: FastifyBaseLogger;
}

export interface StartOptions<S extends Spec> {
  name: string;
  /** The service's own variables; common ones (DATABASE_URL, NATS_URL, PORT, …) are added. */
  env: S;
  build: (runtime: ServiceRuntime<CommonConfig & ConfigOf<S>>) => Promise<{
    app: ServiceInstance;
    /** Background work to stop before NATS and PostgreSQL are closed. */
    stop?: () => Promise<void>;
  }>;
  defaultPort: number;
}

/**
 * The body of every service's main.ts: validate config (exit 2 naming the variable),
 * connect to PostgreSQL and NATS, build the app, listen, and shut down cleanly on signals.
 * A failure to start (the port taken, the build failing) ends it with exit 1 and one line
 * naming what failed, not a stack trace.
 */
export async function startService<S extends Spec>(options: StartOptions<S>): Promise<void> {
  try {
    await startSteps(options);
  } catch (error) {
    process.stderr.write(`${options.name}: ${startFailure(error)}\n`);
    process.exit(1);
  }
}

function startFailure(error: unknown): string {
  const e = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e.syscall === 'listen' && e.code === 'EADDRINUSE') {
    return `cannot listen on ${e.address}:${e.port}: the port is in use (set PORT to a free one)`;
  }
  if (e.syscall === 'listen' && e.code === 'EACCES') {
    return `cannot listen on ${e.address}:${e.port}: permission denied (set PORT above 1023)`;
  }
  return `could not start: ${e.message}`;
}

async function startSteps<S extends Spec>(options: StartOptions<S>): Promise<void> {
  let config: CommonConfig & ConfigOf<S>;
  let grants: ReturnType<typeof parseTokenGrants>;
  try {
    config = { ...loadConfig(serviceEnv(options.name, options.defaultPort)), ...loadConfig(options.env) };
    try {
      grants = parseTokenGrants(config.AUTH_TOKENS);
    } catch (error) {
      throw new ConfigError(['AUTH_TOKENS'], (error as Error).message);
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${options.name}: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }

  const logger = createLogger({ name: options.name, level: config.LOG_LEVEL, format: config.LOG_FORMAT });
  const applicationName = `spywatcher-${options.name}`;
  const sql = createSql({
    url: config.DATABASE_URL,
    applicationName,
    max: config.DATABASE_POOL_MAX,
    statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
    pgbouncer: config.DATABASE_PGBOUNCER,
  });
  const auth = createAuth(grants, { disabled: config.AUTH_DISABLED, metricsPublic: config.METRICS_PUBLIC });
  logger.info({ servers: redactServers(config.NATS_URL) }, 'connecting to NATS');
  let closeWaiting = async () => {};
  const nats = await connectNats(
    { ...natsConnectionOptions(config, options.name), name: applicationName, maxReconnectAttempts: -1 },
    {
      logger,
      onUnreachable: async (reason) => {
        const { HOST: host, PORT: port } = config;
        closeWaiting = await startWaitingService({
          name: options.name,
          host,
          port,
          sql,
          auth,
          logger,
          waitingFor: 'nats',
          reason,
        });
      },
    },
  );
  await closeWaiting();
  const metrics = createMetricsRegistry(options.name);
  if (auth.disabled) logger.warn('AUTH_DISABLED=true: every endpoint is open');
  else if (grants.length === 0) logger.warn('AUTH_TOKENS is empty: protected endpoints will answer 401');

  const { app, stop } = await options.build({ config, sql, nats, auth, metrics, logger });
  await runService({
    app,
    host: config.HOST,
    port: config.PORT,
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    closers: [
      ...(stop ? [{ name: 'background work', close: stop }] : []),
      { name: 'nats', close: () => nats.drain() },
      { name: 'postgres', close: () => sql.end({ timeout: 5 }) },
    ],
  });
}
