import { type Auth, errorResponses, type ServiceInstance, Type } from '@spywatcher/service';
import { mapErrors } from '../http-errors.ts';
import type { Ops } from '../ops.ts';
import { JobAccepted } from './schemas.ts';

const Step = Type.Object({ target: Type.String(), statement: Type.String(), reason: Type.String() });
const Plan = Type.Object({
  kind: Type.String(),
  scope: Type.Union([Type.Literal('all'), Type.Literal('chosen')]),
  steps: Type.Array(Step),
  skipped: Type.Array(Type.Object({ target: Type.String(), reason: Type.String() })),
});

export function maintenanceRoutes(app: ServiceInstance, deps: { ops: Ops; auth: Auth }): void {
  app.post(
    '/v1/maintenance/:kind',
    {
      config: { scope: 'ops:write' },
      schema: {
        tags: ['maintenance'],
        summary: 'VACUUM, ANALYZE or REINDEX (scope ops:write)',
        description:
          'Without `tables`, plans the tables (vacuum, analyze) or indexes (reindex) that need it, each with its reason (dead tuples, last vacuum, bloat estimate); with `tables` (partitioned tables expand to their partitions), every one of them. `dryRun` returns the plan (200) without running it. REINDEX runs CONCURRENTLY. One job of a kind at a time (409); cancel with POST /v1/jobs/{id}/cancel.',
        params: Type.Object({
          kind: Type.Union([Type.Literal('vacuum'), Type.Literal('analyze'), Type.Literal('reindex')]),
        }),
        body: Type.Optional(
          Type.Object(
            {
              tables: Type.Optional(
                Type.Array(Type.String({ minLength: 1, maxLength: 200 }), {
                  maxItems: 500,
                  examples: [['message_events']],
                }),
              ),
              dryRun: Type.Optional(Type.Boolean({ default: false })),
            },
            { additionalProperties: false },
          ),
        ),
        response: { 200: Plan, 202: JobAccepted, ...errorResponses(400, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      const { kind } = request.params;
      const tables = request.body?.tables;
      if (request.body?.dryRun)
        return reply.status(200).send(await mapErrors(() => deps.ops.planMaintenance(kind, tables)));
      const who = deps.auth.authenticate(request).name;
      const { job } = await mapErrors(() => deps.ops.startMaintenance('http', kind, tables, who));
      const url = `/v1/jobs/${job.id}`;
      return reply.status(202).header('location', url).send({ job, url });
    },
  );
}
