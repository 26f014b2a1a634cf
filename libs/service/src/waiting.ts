import type { Sql } from '@spywatcher/db';
import type { FastifyBaseLogger } from 'fastify';
import type { Auth } from './auth.ts';
import { createMetricsRegistry } from './metrics.ts';
import { buildService } from './service.ts';

export interface WaitingServiceOptions {
  name: string;
  host: string;
  port: number;
  sql: Sql;
  auth: Auth;
  logger: FastifyBaseLogger;
  /** The dependency the service waits for, and why it is not there yet. */
  waitingFor: string;
  reason: () => string;
}

/**
 * A stand-in served on the service's port while a dependency it needs to build itself (NATS)
 * cannot be reached: /health answers, and /ready answers 503 naming that dependency and the
 * reason, so an orchestrator or a person sees what is missing instead of a closed port.
 * Returns a function that closes it, before the real service listens on the same port.
 */
export async function startWaitingService(options: WaitingServiceOptions): Promise<() => Promise<void>> {
  const app = await buildService({
    name: options.name,
    version: '0.0.0',
    description: `${options.name} is waiting for ${options.waitingFor}`,
    sql: options.sql,
    readiness: {
      [options.waitingFor]: async () => {
        throw new Error(options.reason());
      },
    },
    metrics: createMetricsRegistry(options.name),
    auth: options.auth,
    loggerInstance: options.logger,
  });
  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    options.logger.error({ err: error }, `cannot listen on ${options.host}:${options.port}`);
    await app.close();
    return async () => {};
  }
  return async () => void (await app.close());
}
