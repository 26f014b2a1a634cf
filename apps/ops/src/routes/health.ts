import { type Auth, errorResponses, type ServiceInstance, Type } from '@spywatcher/service';
import type { HealthReport } from '../health.ts';
import type { Ops } from '../ops.ts';

const Finding = Type.Object({
  check: Type.String({ examples: ['dead_tuples'] }),
  severity: Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('critical')]),
  subject: Type.String({ examples: ['public.message_events_p20261101'] }),
  message: Type.String(),
  action: Type.String({ description: 'What to do about it' }),
});

export function healthRoutes(
  app: ServiceInstance,
  deps: { ops: Ops; auth: Auth; onReport?: (r: HealthReport) => void },
): void {
  app.get(
    '/v1/database/health',
    {
      config: { scope: 'ops:read' },
      schema: {
        tags: ['health'],
        summary: 'Database health report (scope ops:read)',
        description:
          'Sizes; table and index bloat estimates; unused, duplicate and redundant indexes; long-running queries, idle-in-transaction sessions and blocking locks; connections against max_connections; cache hit ratio; dead tuples and last (auto)vacuum/analyze; transaction-id wraparound age; partition coverage; backup ages; streaming replication (the standbys of a primary and their replay lag, or the lag of this standby). Each finding has a severity and an action. The same figures are Prometheus metrics at /metrics (spywatcher_db_*, spywatcher_backup_*).',
        querystring: Type.Object({
          longQueryMs: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: 86_400_000,
              description: 'Override HEALTH_LONG_QUERY_MS (ms, at most a day)',
            }),
          ),
          idleInTransactionMs: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: 86_400_000,
              description: 'Override HEALTH_IDLE_IN_TRANSACTION_MS (ms, at most a day)',
            }),
          ),
        }),
        response: {
          200: Type.Object(
            {
              generatedAt: Type.String({ format: 'date-time' }),
              durationMs: Type.Integer(),
              database: Type.String(),
              status: Type.Union([
                Type.Literal('ok'),
                Type.Literal('info'),
                Type.Literal('warning'),
                Type.Literal('critical'),
              ]),
              findings: Type.Array(Finding),
            },
            { additionalProperties: true },
          ),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const report = await deps.ops.health(request.query);
      if (!request.query.longQueryMs && !request.query.idleInTransactionMs) deps.onReport?.(report);
      return report;
    },
  );
}
