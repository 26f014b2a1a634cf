import type { FastifyBaseLogger } from 'fastify';
import type { ServiceInstance } from './service.ts';

export interface RunOptions {
  app: ServiceInstance;
  host: string;
  port: number;
  logger: FastifyBaseLogger;
  /** Called in order after HTTP has stopped: stop background work, drain NATS, close the pool. */
  closers: { name: string; close: () => Promise<unknown> }[];
  shutdownTimeoutMs: number;
  /** Injected for tests; defaults to process.exit. */
  exit?: (code: number) => void;
}

/**
 * Listens, then on SIGTERM/SIGINT shuts down in order: stop accepting connections and let
 * in-flight requests finish (fastify.close), run the closers, exit 0. If that takes longer
 * than `shutdownTimeoutMs` the process exits 1 anyway so an orchestrator is never stuck.
 */
export async function runService(
  options: RunOptions,
): Promise<{ shutdown: (signal: string) => Promise<void> }> {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let stopping: Promise<void> | undefined;

  const shutdown = (signal: string): Promise<void> => {
    if (stopping) return stopping;
    options.logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      options.logger.error({ timeoutMs: options.shutdownTimeoutMs }, 'shutdown took too long; exiting');
      exit(1);
    }, options.shutdownTimeoutMs);
    timer.unref();
    stopping = (async () => {
      let code = 0;
      // A keep-alive connection whose request is in flight when close() starts is not idle then,
      // and Node would keep it open after the response until the client hangs up: sweep idle
      // connections until HTTP has closed so shutdown ends as soon as the last response is sent.
      const sweep = setInterval(() => options.app.server.closeIdleConnections(), 100);
      try {
        await options.app.close();
      } catch (error) {
        options.logger.error({ err: error }, 'closing HTTP failed');
        code = 1;
      } finally {
        clearInterval(sweep);
      }
      for (const closer of options.closers) {
        try {
          await closer.close();
        } catch (error) {
          options.logger.error({ err: error, closer: closer.name }, 'close failed');
          code = 1;
        }
      }
      clearTimeout(timer);
      options.logger.info({ code }, 'stopped');
      exit(code);
    })();
    return stopping;
  };

  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  await options.app.listen({ host: options.host, port: options.port });
  return { shutdown };
}
