import { type Auth, errorResponses, httpErrors, type ServiceInstance, Type } from '@spywatcher/service';
import { mapErrors } from '../http-errors.ts';
import type { Ops } from '../ops.ts';
import { BackupId, JobAccepted, ManifestSchema } from './schemas.ts';

export function backupRoutes(app: ServiceInstance, deps: { ops: Ops; auth: Auth }): void {
  const { ops, auth } = deps;
  const who = (request: Parameters<Auth['authenticate']>[0]) => auth.authenticate(request).name;

  app.post(
    '/v1/backups',
    {
      config: { scope: 'ops:write' },
      schema: {
        tags: ['backups'],
        summary: 'Start a backup (scope ops:write)',
        description:
          "pg_dump -Fc with compression into BACKUP_DIR, with a sha256 and a manifest of per-table row counts; retention runs afterwards. A backup that cannot fit (estimated from the database size and the last backup's compression ratio) fails before writing anything; a full disk, a killed pg_dump or a stalled off-site endpoint fail the job with the reason and leave no partial file. Answers 202 with the job; a second request while one runs answers 409 naming it.",
        response: { 202: JobAccepted, ...errorResponses(401, 403, 409) },
      },
    },
    async (request, reply) => {
      const { job } = await mapErrors(() => ops.startBackup('http', who(request)));
      const url = `/v1/jobs/${job.id}`;
      return reply.status(202).header('location', url).send({ job, url });
    },
  );

  app.get(
    '/v1/backups',
    {
      config: { scope: 'ops:read' },
      schema: {
        tags: ['backups'],
        summary: 'List backups, newest first (scope ops:read)',
        description:
          'Every database whose backups are in BACKUP_DIR (each manifest names its database; `kind` is `safety` for the backups restores take). Manifests that cannot be read are listed under `broken` with the reason instead of failing the listing.',
        querystring: Type.Object({
          database: Type.Optional(
            Type.String({ maxLength: 63, description: 'Only the backups of this database' }),
          ),
        }),
        response: {
          200: Type.Object({
            backups: Type.Array(ManifestSchema),
            broken: Type.Array(Type.Object({ file: Type.String(), error: Type.String() })),
          }),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const { backups, broken } = await ops.catalogue.scan();
      const database = request.query.database;
      return { backups: database ? backups.filter((b) => b.database === database) : backups, broken };
    },
  );

  app.get(
    '/v1/backups/:id',
    {
      config: { scope: 'ops:read' },
      schema: {
        tags: ['backups'],
        summary: 'One backup manifest (scope ops:read)',
        params: Type.Object({ id: BackupId }),
        response: { 200: ManifestSchema, ...errorResponses(400, 401, 403, 404, 422) },
      },
    },
    async (request) => {
      const manifest = await mapErrors(() => ops.catalogue.get(request.params.id));
      if (!manifest) throw httpErrors.notFound(`backup ${request.params.id} not found`);
      return manifest;
    },
  );

  app.delete(
    '/v1/backups/:id',
    {
      config: { scope: 'ops:write' },
      schema: {
        tags: ['backups'],
        summary: 'Delete a backup and its off-site copy (scope ops:write)',
        description: 'Refused (409) while a verify or restore job is reading it.',
        params: Type.Object({ id: BackupId }),
        response: { 204: Type.Null(), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const existed = await mapErrors(() => ops.deleteBackup(request.params.id));
      if (!existed) throw httpErrors.notFound(`backup ${request.params.id} not found`);
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/v1/backups/:id/verify',
    {
      config: { scope: 'ops:write' },
      schema: {
        tags: ['backups'],
        summary: 'Prove a backup restorable (scope ops:write)',
        description:
          'Checks the sha256, restores into a scratch database, compares per-table row counts with the manifest, runs amcheck (bt_index_check) on every B-tree index, drops the scratch database and records the verdict in the manifest.',
        params: Type.Object({ id: BackupId }),
        response: { 202: JobAccepted, ...errorResponses(400, 401, 403, 404, 409, 422) },
      },
    },
    async (request, reply) => {
      const { job } = await mapErrors(() => ops.startVerify('http', request.params.id, who(request)));
      const url = `/v1/jobs/${job.id}`;
      return reply.status(202).header('location', url).send({ job, url });
    },
  );
}
