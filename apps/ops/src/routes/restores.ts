import { type Auth, errorResponses, type ServiceInstance, Type } from '@spywatcher/service';
import { mapErrors } from '../http-errors.ts';
import type { Ops } from '../ops.ts';
import { BackupId, JobAccepted } from './schemas.ts';

export function restoreRoutes(app: ServiceInstance, deps: { ops: Ops; auth: Auth }): void {
  app.post(
    '/v1/restores',
    {
      config: { scope: 'ops:restore' },
      schema: {
        tags: ['restores'],
        summary: 'Restore a backup into a database (scope ops:restore)',
        description:
          "The target is the service's own database or one OPS_RESTORE_TARGETS lists (403 TARGET_NOT_ALLOWED otherwise). Refuses (409 CONFIRMATION_REQUIRED) to overwrite the live database or one with open connections unless `confirm` repeats the target name. An existing target gets a safety backup first; the data is restored into a fresh database, verified (row counts, amcheck) and only then swapped in, so a failed restore leaves the target untouched.",
        body: Type.Object(
          {
            backupId: BackupId,
            target: Type.String({
              minLength: 1,
              maxLength: 63,
              examples: ['spywatcher_restored'],
              description: 'Database to restore into (created or replaced)',
            }),
            confirm: Type.Optional(
              Type.String({
                description: 'The target name again, to overwrite a live or connected database',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 202: JobAccepted, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const who = deps.auth.authenticate(request).name;
      const { job } = await mapErrors(() => deps.ops.startRestore('http', request.body, who));
      const url = `/v1/jobs/${job.id}`;
      return reply.status(202).header('location', url).send({ job, url });
    },
  );
}
