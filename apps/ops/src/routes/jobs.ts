import {
  type Auth,
  errorResponses,
  HttpError,
  httpErrors,
  type ServiceInstance,
  Type,
} from '@spywatcher/service';
import type { Ops } from '../ops.ts';
import { JobSchema } from './schemas.ts';

export function jobRoutes(app: ServiceInstance, deps: { ops: Ops; auth: Auth }): void {
  const { runner } = deps.ops;
  app.get(
    '/v1/jobs',
    {
      config: { scope: 'ops:read' },
      schema: {
        tags: ['jobs'],
        summary: 'Recent jobs, newest first (scope ops:read)',
        querystring: Type.Object({
          kind: Type.Optional(Type.String({ maxLength: 40, examples: ['backup'] })),
          status: Type.Optional(
            Type.Union([
              Type.Literal('running'),
              Type.Literal('succeeded'),
              Type.Literal('failed'),
              Type.Literal('cancelled'),
            ]),
          ),
          limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
        }),
        response: { 200: Type.Object({ jobs: Type.Array(JobSchema) }), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => ({ jobs: await runner.list(request.query) }),
  );

  app.get(
    '/v1/jobs/:id',
    {
      config: { scope: 'ops:read' },
      schema: {
        tags: ['jobs'],
        summary: 'One job: status, progress, timings, result or error (scope ops:read)',
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: { 200: JobSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      // a job of this process answers from memory: fresher than its row, and there even while
      // a restore swaps the database that holds the row
      const job = runner.current(request.params.id) ?? (await runner.get(request.params.id));
      if (!job) throw httpErrors.notFound(`job ${request.params.id} not found`);
      return job;
    },
  );

  app.post(
    '/v1/jobs/:id/cancel',
    {
      config: { scope: 'ops:write' },
      schema: {
        tags: ['jobs'],
        summary: 'Cancel a running job (scope ops:write)',
        description:
          'Stops pg_dump/pg_restore, aborts S3 requests, closes the connections of verification queries, or cancels the SQL statement of a maintenance job (pg_cancel_backend). Answers within about a second with the job as it is then (usually `cancelled`; `running` with the cancel under way if a step takes longer to stop). 409 when the job is not running.',
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: { 202: Type.Object({ job: JobSchema }), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      // a job of this process is cancelled without a database round trip first
      const job = runner.current(request.params.id) ?? (await runner.get(request.params.id));
      if (!job) throw httpErrors.notFound(`job ${request.params.id} not found`);
      const who = deps.auth.authenticate(request).name;
      if (!(await runner.cancel(job.id, `cancelled by ${who}`))) {
        throw new HttpError(
          409,
          'NOT_RUNNING',
          `job ${job.id} is ${job.status}${job.status === 'running' ? ' in another ops instance' : ''}`,
        );
      }
      // the answer must not hang on a step that is slow to stop: wait a moment, then report
      await runner.settle(job.id, 250);
      return reply.status(202).send({ job: runner.current(job.id) ?? (await runner.get(job.id)) ?? job });
    },
  );
}
