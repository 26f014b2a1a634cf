import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Sql } from '@spywatcher/db';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import type { Registry } from 'prom-client';
import { Type } from 'typebox';
import { hasScope, installAccessControl } from './access.ts';
import type { Auth, Principal } from './auth.ts';
import { errorResponseSchema, installErrorHandling } from './errors.ts';
import { instrumentHttp } from './metrics.ts';
import { completeDocument } from './openapi.ts';
import {
  natsCheck,
  postgresCheck,
  type ReadinessCheck,
  type ReadinessDetails,
  registerDependencyMetrics,
} from './readiness.ts';

export type ServiceInstance = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export interface ServiceOptions {
  name: string;
  version: string;
  description: string;
  /** The service's pool: probed by /ready ("postgres") and measured in /metrics. */
  sql?: Sql;
  /** The service's NATS connection: probed by /ready ("nats") and measured in /metrics. */
  nats?: NatsConnection;
  /** Further dependencies /ready probes; their names appear in its detail (`metrics:read`) and the log. */
  readiness?: Record<string, ReadinessCheck>;
  metrics: Registry;
  auth: Auth;
  /** pino options or an existing logger (tests pass `false` to keep output quiet). */
  logger?: FastifyServerOptions['logger'];
  loggerInstance?: FastifyBaseLogger;
  /** Largest request body accepted, in bytes. */
  bodyLimit?: number;
  /** operationId of each operation, keyed `METHOD /path` as in the document (`/v1/jobs/{id}`). */
  operationIds?: Record<string, string>;
  /** OpenAPI tags with descriptions, shown as sections in /docs. */
  tags?: { name: string; description: string }[];
}

/** Paths whose values pino replaces with "[Redacted]". */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.password',
  '*.token',
  '*.accessToken',
  '*.refreshToken',
  '*.secret',
  'password',
  'token',
  'config.DATABASE_URL',
  'config.AUTH_TOKENS',
];

/** pino options with redaction, for services and CLIs alike. */
export function loggerOptions(level: string): FastifyServerOptions['logger'] {
  return { level, redact: { paths: REDACT_PATHS, censor: '[Redacted]' } };
}

/**
 * Builds a Fastify instance with what every SpyWatcher service shares: request ids,
 * redacting logger, one error shape, OpenAPI at /openapi.json with docs at /docs,
 * /health, /ready, /metrics. The service's own routes are registered by its app.ts.
 */
export async function buildService(options: ServiceOptions): Promise<ServiceInstance> {
  const app = Fastify({
    ...(options.loggerInstance
      ? { loggerInstance: options.loggerInstance }
      : { logger: options.logger ?? false }),
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && /^[\w.-]{1,128}$/.test(incoming) ? incoming : randomUUID();
    },
    requestIdHeader: false,
    bodyLimit: options.bodyLimit ?? 1_048_576,
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, allErrors: false } },
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as ServiceInstance;

  const readiness: Record<string, ReadinessCheck> = {
    ...(options.sql ? { postgres: postgresCheck(options.sql) } : {}),
    ...(options.nats ? { nats: natsCheck(options.nats) } : {}),
    ...options.readiness,
  };
  registerDependencyMetrics(options.metrics, {
    sql: options.sql,
    nats: options.nats,
    applicationName: `spywatcher-${options.name}`,
    poolMax: (options.sql as unknown as { options?: { max?: number } } | undefined)?.options?.max,
  });

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  installAccessControl(app, options.auth);
  // Bodies are JSON (or a type a route adds): a text/plain body answers 415 instead of reaching a handler.
  app.removeContentTypeParser('text/plain');
  installErrorHandling(app);
  instrumentHttp(app, options.metrics);
  app.addSchema(errorResponseSchema);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: options.name,
        version: options.version,
        description: options.description,
        license: { name: 'Proprietary', identifier: 'LicenseRef-SpyWatcher-Proprietary' },
      },
      // Relative: the host and port this document is served from.
      servers: [{ url: '/', description: 'this service' }],
      tags: [{ name: 'operations', description: 'Health, readiness and metrics' }, ...(options.tags ?? [])],
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'A token from AUTH_TOKENS; each endpoint names the scope it needs.',
          },
        },
      },
    },
    refResolver: { buildLocalReference: (json, _base, _frag, i) => (json.$id as string) ?? `def-${i}` },
    transformObject: (document) =>
      completeDocument(
        ('openapiObject' in document ? document.openapiObject : {}) as Record<string, unknown>,
        options.operationIds,
      ),
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());

  app.get(
    '/health',
    {
      config: { public: true },
      schema: {
        tags: ['operations'],
        summary: 'Liveness: the process is up and serving HTTP',
        response: {
          200: Type.Object({ status: Type.Literal('ok'), service: Type.String(), uptimeS: Type.Number() }),
        },
      },
    },
    async () => ({ status: 'ok' as const, service: options.name, uptimeS: Math.round(process.uptime()) }),
  );

  const CheckResult = Type.Object({
    ok: Type.Boolean(),
    error: Type.Optional(Type.String()),
    ms: Type.Number(),
    details: Type.Optional(
      Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]), {
        description: "Figures the check reports, e.g. a replica's replicationLagMs",
      }),
    ),
  });
  const Detail = {
    failing: Type.Optional(Type.Array(Type.String())),
    checks: Type.Optional(Type.Record(Type.String(), CheckResult)),
  };
  app.get(
    '/ready',
    {
      config: { public: true },
      schema: {
        tags: ['operations'],
        summary: 'Readiness: every dependency (PostgreSQL, NATS, a read replica) answers',
        description:
          'Public: answers 200 `ready` or 503 `not_ready`, nothing more. A token with `metrics:read` also gets each check (`checks` with error text and figures such as a replica lag, `failing`); the failing checks are logged either way.',
        security: [{}, { bearerAuth: ['metrics:read'] }],
        response: {
          200: Type.Object({ status: Type.Literal('ready'), ...Detail }),
          503: Type.Object({ status: Type.Literal('not_ready'), ...Detail }),
        },
      },
    },
    async (request, reply) => {
      const checks = await runChecks(readiness);
      const failing = Object.keys(checks).filter((name) => !checks[name]!.ok);
      if (failing.length > 0) request.log.warn({ checks }, `not ready: ${failing.join(', ')}`);
      const detail = mayReadDetail(options.auth, request) ? { failing, checks } : {};
      if (failing.length > 0) return reply.status(503).send({ status: 'not_ready' as const, ...detail });
      return { status: 'ready' as const, ...detail };
    },
  );

  app.get(
    '/metrics',
    {
      config: options.auth.metricsPublic ? { public: true } : { scope: 'metrics:read' },
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics (text exposition format)',
        description: 'Needs scope `metrics:read`, unless the service runs with METRICS_PUBLIC=true.',
        produces: ['text/plain'],
        response: { 200: { description: 'The metrics, one sample a line', type: 'string' } },
      },
    },
    async (_request, reply) => {
      reply.header('content-type', options.metrics.contentType);
      return options.metrics.metrics();
    },
  );

  return app;
}

/** Runs every readiness check, each timed, none failing the others. */
async function runChecks(
  readiness: Record<string, ReadinessCheck>,
): Promise<Record<string, { ok: boolean; error?: string; ms: number; details?: ReadinessDetails }>> {
  const entries = await Promise.all(
    Object.entries(readiness).map(async ([name, check]) => {
      const started = performance.now();
      try {
        const details = await check();
        const ms = Math.round(performance.now() - started);
        return [name, details ? { ok: true, ms, details } : { ok: true, ms }] as const;
      } catch (error) {
        const ms = Math.round(performance.now() - started);
        return [name, { ok: false, error: (error as Error).message, ms }] as const;
      }
    }),
  );
  return Object.fromEntries(entries);
}

/** Readiness detail names hosts and ports: only for a caller whose token holds `metrics:read`. */
function mayReadDetail(auth: Auth, request: Parameters<Auth['authenticate']>[0]): boolean {
  let principal: Principal;
  try {
    principal = auth.authenticate(request);
  } catch {
    return false;
  }
  return hasScope(principal, 'metrics:read');
}

/** Standard error responses to spread into a route's `response` schema. */
export const errorResponses = (...codes: number[]) =>
  Object.fromEntries(codes.map((c) => [c, { $ref: 'ErrorResponse#' }])) as Record<number, { $ref: string }>;
