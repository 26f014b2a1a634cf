import type { FastifyBaseLogger } from 'fastify';
import { pino } from 'pino';
import { PinoPretty } from 'pino-pretty';
import { REDACT_PATHS } from './service.ts';

export type LogFormat = 'auto' | 'json' | 'pretty';

export interface LoggerOptions {
  name: string;
  level: string;
  /** `auto`: readable lines when stdout is a terminal outside production, JSON otherwise. */
  format?: LogFormat;
  /** Where the lines go (stdout by default); tests pass a stream to read them. */
  destination?: NodeJS.WritableStream & { isTTY?: boolean };
  env?: NodeJS.ProcessEnv;
}

/** Whether a logger writes pino-pretty lines (true) or one JSON object a line (false). */
export function wantsPretty(
  format: LogFormat,
  out: { isTTY?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  if (format !== 'auto') return format === 'pretty';
  return out.isTTY === true && env.NODE_ENV !== 'production';
}

/**
 * The service's pino logger, with the redaction every service shares. JSON for machines
 * (containers, log shippers); in development on a terminal, pino-pretty lines: time, level,
 * message and the fields, one line each so several services' output can be told apart.
 */
export function createLogger(options: LoggerOptions): FastifyBaseLogger {
  const out = options.destination ?? process.stdout;
  const env = options.env ?? process.env;
  const base = {
    name: options.name,
    level: options.level,
    redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
  };
  if (!wantsPretty(options.format ?? 'auto', out, env)) {
    return (options.destination
      ? pino(base, options.destination)
      : pino(base)) as unknown as FastifyBaseLogger;
  }
  const pretty = PinoPretty({
    destination: out,
    // Synchronous, like pino's default destination: nothing is lost when the process exits.
    sync: true,
    colorize: out.isTTY === true || Boolean(options.env?.FORCE_COLOR ?? process.env.FORCE_COLOR),
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,name',
    singleLine: true,
  });
  return pino(base, pretty) as unknown as FastifyBaseLogger;
}
