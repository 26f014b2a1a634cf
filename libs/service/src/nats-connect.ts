import { type ConnectionOptions, connect, type NatsConnection } from '@nats-io/transport-node';
import type { FastifyBaseLogger } from 'fastify';
import { redactServers } from './nats-auth.ts';

export interface NatsRetryOptions {
  logger: FastifyBaseLogger;
  /** Pause between attempts while NATS cannot be reached. */
  retryMs?: number;
  /** How often the "cannot reach NATS" warning is repeated while retrying. */
  warnEveryMs?: number;
  /**
   * Called once, after the first failed attempt, with a function that describes the latest
   * failure: the caller serves /ready naming NATS meanwhile.
   */
  onUnreachable?: (reason: () => string) => Promise<void>;
}

function describe(error: unknown): string {
  const e = error as Error & { cause?: Error };
  return e.cause?.message && e.cause.message !== e.message ? `${e.message} (${e.cause.message})` : e.message;
}

/** Logs the connection's later losses and recoveries, so a dropped NATS is visible in the log. */
function logConnectionChanges(nc: NatsConnection, logger: FastifyBaseLogger): void {
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect')
        logger.warn({ server: s.server }, 'lost the NATS connection; reconnecting');
      else if (s.type === 'reconnect') logger.info({ server: s.server }, 'reconnected to NATS');
    }
  })().catch(() => {});
}

/**
 * Connects to NATS, retrying until it answers. Unlike `waitOnFirstConnect`, each failed attempt
 * is known here, so the log says at once (and every `warnEveryMs`) which server cannot be
 * reached and why, instead of waiting in silence. Once connected, the client reconnects by itself.
 */
export async function connectNats(
  options: ConnectionOptions,
  retry: NatsRetryOptions,
): Promise<NatsConnection> {
  const retryMs = retry.retryMs ?? 2000;
  const warnEveryMs = retry.warnEveryMs ?? 15_000;
  const servers = redactServers(([] as string[]).concat(options.servers ?? []).join(','));
  let attempts = 0;
  let lastReason = '';
  let lastWarning = Number.NEGATIVE_INFINITY;
  for (;;) {
    try {
      const nc = await connect({ timeout: 2000, ...options, waitOnFirstConnect: false });
      if (attempts > 0) retry.logger.info({ servers, attempts: attempts + 1 }, 'connected to NATS');
      logConnectionChanges(nc, retry.logger);
      return nc;
    } catch (error) {
      attempts++;
      lastReason =
        (error as Error).name === 'AuthorizationError'
          ? `${describe(error)}: the server refused the credentials (NATS_USER and NATS_PASSWORD, NATS_TOKEN, NATS_CREDS or the user in NATS_URL)`
          : describe(error);
      if (Date.now() - lastWarning >= warnEveryMs) {
        lastWarning = Date.now();
        retry.logger.warn(
          { servers, attempts },
          `cannot reach NATS at ${servers}: ${lastReason}; retrying every ${retryMs / 1000} s (start NATS, or set NATS_URL)`,
        );
      }
      if (attempts === 1) await retry.onUnreachable?.(() => `cannot reach NATS at ${servers}: ${lastReason}`);
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }
}
