import type { Sql } from '@spywatcher/db';
import {
  getRebuildJob,
  projectionStatus,
  RebuildConflictError,
  startRebuildJob,
} from '@spywatcher/projections';
import type { Auth } from '@spywatcher/service';
import { errorResponses, HttpError, httpErrors, type ServiceInstance, Type } from '@spywatcher/service';
import { findProjection, PROJECTIONS } from '../projections/definitions.ts';

const Job = Type.Object({
  id: Type.String({ format: 'uuid' }),
  projection: Type.String({ examples: ['activity'] }),
  status: Type.Union([Type.Literal('running'), Type.Literal('succeeded'), Type.Literal('failed')]),
  phase: Type.String({
    description: 'starting, bulk n/m tables, indexing, catching up, swapping, done',
    examples: ['bulk 1/2 tables'],
  }),
  eventsDone: Type.Integer({
    description:
      'Events counted in the time chunks whose tables are filled, then plus the tail; exact at the end',
  }),
  eventsTotal: Type.Integer({
    description: 'Estimated from planner statistics while the bulk pass runs; the counted events at the end',
  }),
  startedAt: Type.String(),
  finishedAt: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  report: Type.Union([
    Type.Object({
      projection: Type.String(),
      events: Type.Integer({
        description: 'Events folded into the rebuilt model, counted (bulk pass + tail), not estimated',
      }),
      tables: Type.Integer({ description: 'Read-model tables rebuilt' }),
      bulkSeconds: Type.Number(),
      tailEvents: Type.Integer(),
      swapSeconds: Type.Number(),
      seconds: Type.Number(),
    }),
    Type.Null(),
  ]),
  url: Type.String({ description: 'Where to follow the job' }),
});

const jobUrl = (name: string, id: string) => `/v1/projections/${name}/rebuilds/${id}`;

export async function projectionRoutes(app: ServiceInstance, deps: { sql: Sql; auth: Auth }): Promise<void> {
  app.get(
    '/v1/projections',
    {
      config: { scope: 'projections:read' },
      schema: {
        tags: ['projections'],
        summary: 'Status of every projection: checkpoint, events behind, seconds behind',
        description:
          'Per projection and event type: the checkpoint (tx, position), how many stored events lie past it (counted up to 1,000,000) and the age in seconds of the oldest of them (0 when caught up). Needs scope `projections:read`.',
        response: {
          200: Type.Object({
            projections: Type.Array(
              Type.Object({
                name: Type.String(),
                description: Type.String(),
                tables: Type.Array(Type.String()),
                eventsBehind: Type.Integer(),
                secondsBehind: Type.Number(),
                checkpoints: Type.Array(
                  Type.Object({
                    type: Type.String(),
                    tx: Type.String(),
                    position: Type.String(),
                    eventsApplied: Type.Integer({
                      description:
                        'Events of this type folded into the read model: by the last rebuild, then by batches',
                    }),
                    updatedAt: Type.Union([Type.String(), Type.Null()]),
                    eventsBehind: Type.Integer(),
                    secondsBehind: Type.Number(),
                  }),
                ),
              }),
            ),
          }),
        },
      },
    },
    async () => ({ projections: await projectionStatus(deps.sql, PROJECTIONS) }),
  );

  app.post(
    '/v1/projections/:name/rebuild',
    {
      config: { scope: 'projections:write' },
      schema: {
        tags: ['projections'],
        summary: 'Rebuild a projection from the start of the log without downtime (scope projections:write)',
        description:
          'Builds the read model afresh into new tables while the current ones keep serving, then swaps them in one transaction. Answers 202 with the job; follow it at the returned URL. 409 when a rebuild of the same projection is already running.',
        params: Type.Object({
          name: Type.String({ description: 'Projection name', examples: PROJECTIONS.map((p) => p.name) }),
        }),
        response: { 202: Job, ...errorResponses(401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const { name } = request.params as { name: string };
      const projection = findProjection(name);
      if (!projection) {
        throw httpErrors.notFound(
          `no projection "${name}"; known: ${PROJECTIONS.map((p) => p.name).join(', ')}`,
        );
      }
      try {
        const { job, done } = await startRebuildJob(deps.sql, projection);
        done.then(
          (j) =>
            request.log.info(
              { job: j.id, status: j.status, report: j.report, error: j.error },
              'rebuild finished',
            ),
          (error) => request.log.error({ err: error }, 'rebuild failed'),
        );
        const url = jobUrl(name, job.id);
        reply.header('location', url);
        return reply.status(202).send({ ...job, url });
      } catch (error) {
        if (error instanceof RebuildConflictError) {
          throw new HttpError(409, 'CONFLICT', error.message, { runningJobId: error.runningJobId });
        }
        throw error;
      }
    },
  );

  app.get(
    '/v1/projections/:name/rebuilds/:id',
    {
      config: { scope: 'projections:read' },
      schema: {
        tags: ['projections'],
        summary: 'Progress and report of a rebuild job',
        description: 'Needs scope `projections:read`.',
        params: Type.Object({ name: Type.String(), id: Type.String({ format: 'uuid' }) }),
        response: { 200: Job, ...errorResponses(400, 404) },
      },
    },
    async (request) => {
      const { name, id } = request.params as { name: string; id: string };
      const job = await getRebuildJob(deps.sql, id);
      if (!job || job.projection !== name) throw httpErrors.notFound(`no rebuild job ${id} for "${name}"`);
      return { ...job, url: jobUrl(name, id) };
    },
  );
}
