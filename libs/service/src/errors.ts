import type { FastifyError, FastifyInstance } from 'fastify';

/** The one error body every endpoint returns. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

/** An error whose status, code and message are meant for the caller. */
export class HttpError extends Error {
  readonly statusCode: number;
  readonly code: string;
  readonly details?: unknown;
  constructor(statusCode: number, code: string, message: string, details?: unknown) {
    super(message);
    this.name = 'HttpError';
    this.statusCode = statusCode;
    this.code = code;
    this.details = details;
  }
}

export const httpErrors = {
  badRequest: (message: string, details?: unknown) => new HttpError(400, 'BAD_REQUEST', message, details),
  unauthorized: (message: string) => new HttpError(401, 'UNAUTHORIZED', message),
  forbidden: (message: string) => new HttpError(403, 'FORBIDDEN', message),
  notFound: (message: string) => new HttpError(404, 'NOT_FOUND', message),
  conflict: (message: string, details?: unknown) => new HttpError(409, 'CONFLICT', message, details),
  payloadTooLarge: (message: string) => new HttpError(413, 'PAYLOAD_TOO_LARGE', message),
  unavailable: (message: string, details?: unknown) => new HttpError(503, 'UNAVAILABLE', message, details),
};

/** JSON Schema of the error body, for route `response` declarations and OpenAPI. */
export const errorResponseSchema = {
  $id: 'ErrorResponse',
  type: 'object',
  description: 'Every error has this shape.',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', example: 'VALIDATION_FAILED' },
        message: { type: 'string', example: 'querystring/limit must be <= 100' },
        details: {},
      },
    },
  },
} as const;

const FASTIFY_CODES: Record<string, { status: number; code: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'PAYLOAD_TOO_LARGE' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'BAD_REQUEST' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'INVALID_JSON' },
};

/** Seconds a caller is asked to wait when the database is unreachable. */
export const DATABASE_RETRY_AFTER_S = 5;

/** Socket errors, postgres.js connection errors and SQLSTATE classes 08/57P/53300: the server is not there. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '53300',
  '57P01',
  '57P02',
  '57P03',
]);

/** True when `error` (or what caused it) says PostgreSQL cannot be reached right now. */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; depth++) {
    const code = typeof e.code === 'string' ? e.code : '';
    if (UNREACHABLE_CODES.has(code) || code.startsWith('08')) return true;
    if (e instanceof AggregateError && e.errors.some(isDatabaseUnavailable)) return true;
    e = e.cause as typeof e;
  }
  return false;
}

/**
 * Maps every thrown error to the error shape: validation failures name the field, our
 * HttpErrors pass through, client errors raised by Fastify keep their status, an unreachable
 * database is a 503 with Retry-After, and anything else is a 500 with a generic message (the
 * details go to the log, never to the caller: no host, port or path in a body).
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
    if (error instanceof HttpError) {
      const body: ErrorBody = { error: { code: error.code, message: error.message } };
      if (error.details !== undefined) body.error.details = error.details;
      // Every 503 tells the caller when to come back.
      if (error.statusCode === 503 && !reply.hasHeader('retry-after')) {
        reply.header('retry-after', String(DATABASE_RETRY_AFTER_S));
      }
      return reply.status(error.statusCode).send(body);
    }
    const fe = error as FastifyError;
    if (fe.validation) {
      const details = fe.validation.map((v) => ({
        field: `${fe.validationContext ?? 'request'}${v.instancePath || ''}`,
        message: v.message,
        params: v.params,
      }));
      return reply.status(400).send({ error: { code: 'VALIDATION_FAILED', message: fe.message, details } });
    }
    const known = fe.code ? FASTIFY_CODES[fe.code] : undefined;
    if (known) return reply.status(known.status).send({ error: { code: known.code, message: fe.message } });
    const status = fe.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      return reply.status(status).send({ error: { code: fe.code ?? 'BAD_REQUEST', message: fe.message } });
    }
    if (isDatabaseUnavailable(error)) {
      request.log.warn({ err: error }, 'database unavailable');
      reply.header('retry-after', String(DATABASE_RETRY_AFTER_S));
      return reply.status(503).send({
        error: {
          code: 'DATABASE_UNAVAILABLE',
          message: 'the database is unavailable right now; retry later',
        },
      });
    }
    request.log.error({ err: error }, 'request failed');
    return reply
      .status(500)
      .send({ error: { code: 'INTERNAL', message: 'internal error; see the service log' } });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({
      error: {
        code: 'NOT_FOUND',
        message: `no route ${request.method} ${request.url.split('?')[0]}; see /docs`,
      },
    });
  });
}
