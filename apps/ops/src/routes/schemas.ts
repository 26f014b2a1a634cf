import { Type } from '@spywatcher/service';

export const JobSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid', examples: ['019abc12-3456-7def-8123-456789abcdef'] }),
    kind: Type.String({
      examples: ['backup', 'verify', 'restore', 'maintenance:vacuum', 'retention', 'partitions'],
    }),
    status: Type.Union([
      Type.Literal('running'),
      Type.Literal('succeeded'),
      Type.Literal('failed'),
      Type.Literal('cancelled'),
    ]),
    trigger: Type.String({ examples: ['http', 'nats', 'schedule', 'cli'] }),
    params: Type.Object({}, { additionalProperties: true }),
    progress: Type.Object(
      { percent: Type.Number({ minimum: 0, maximum: 100 }), message: Type.Optional(Type.String()) },
      { additionalProperties: true },
    ),
    result: Type.Unknown({ description: 'The report of a finished job (kind-specific)' }),
    error: Type.Union([Type.String(), Type.Null()], { description: 'Why it failed or was cancelled' }),
    requestedBy: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    startedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { description: 'A long-running operation; poll its URL or subscribe to <prefix>.ops.jobs.<id> on NATS' },
);

export const JobAccepted = Type.Object({
  job: JobSchema,
  url: Type.String({ examples: ['/v1/jobs/019abc12-3456-7def-8123-456789abcdef'] }),
});

export const BackupId = Type.String({
  pattern: '^\\d{8}T\\d{6}Z-[0-9a-f]{8}$',
  examples: ['20261126T031500Z-1a2b3c4d'],
  description: 'Backup id (also the file name in BACKUP_DIR)',
});

export const ManifestSchema = Type.Object(
  {
    id: BackupId,
    file: Type.String(),
    database: Type.String(),
    kind: Type.Optional(
      Type.Union([Type.Literal('regular'), Type.Literal('safety')], {
        description: 'safety: taken by a restore just before it replaced `database`',
      }),
    ),
    label: Type.Optional(Type.String({ description: 'Which restore took this safety backup' })),
    snapshotAt: Type.Optional(
      Type.String({ format: 'date-time', description: 'Rows committed after this are not in the backup' }),
    ),
    serverVersion: Type.String(),
    latestMigration: Type.Union([Type.Object({ version: Type.Integer(), name: Type.String() }), Type.Null()]),
    tables: Type.Record(Type.String(), Type.Integer(), {
      description: 'Exact row count per table, from the dump snapshot',
    }),
    totalRows: Type.Integer(),
    sizeBytes: Type.Integer(),
    sha256: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    durationMs: Type.Integer(),
    verification: Type.Optional(Type.Object({ ok: Type.Boolean() }, { additionalProperties: true })),
    offsite: Type.Optional(Type.Object({}, { additionalProperties: true })),
  },
  { additionalProperties: true },
);
