import { migrationStatus, repeatableStatus, type Sql } from '@spywatcher/db';
import { errorResponses, type ServiceInstance, Type } from '@spywatcher/service';
import { MIGRATIONS_DIR } from '../migrations-dir.ts';

const MigrationRow = Type.Object({
  version: Type.Integer({ examples: [4] }),
  name: Type.String({ examples: ['event_tables'] }),
  state: Type.Union(
    [Type.Literal('applied'), Type.Literal('pending'), Type.Literal('changed'), Type.Literal('missing')],
    {
      description: 'changed: edited after being applied; missing: applied but its file is gone',
    },
  ),
  appliedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  durationMs: Type.Union([Type.Integer(), Type.Null()]),
  appliedBy: Type.Union([Type.String(), Type.Null()]),
  noTransaction: Type.Boolean(),
});

const RepeatableRow = Type.Object({
  name: Type.String({ examples: ['sw_message_tsv'] }),
  file: Type.String({ examples: ['repeatable/R__sw_message_tsv.sql'] }),
  state: Type.Union(
    [Type.Literal('applied'), Type.Literal('pending'), Type.Literal('changed'), Type.Literal('removed')],
    {
      description:
        'changed: edited since it was applied (the next migrate applies it again); removed: applied, file gone',
    },
  ),
  appliedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  durationMs: Type.Union([Type.Integer(), Type.Null()]),
  appliedBy: Type.Union([Type.String(), Type.Null()]),
});

export function migrationRoutes(app: ServiceInstance, deps: { sql: Sql; migrationsDir?: string }): void {
  app.get(
    '/v1/migrations',
    {
      config: { scope: 'migrations:read' },
      schema: {
        tags: ['migrations'],
        summary: 'Schema migration status',
        description:
          'Every migration file and every applied version, with its state, then the repeatable migrations. Same data as `nx run migrator:status`. Needs scope `migrations:read`.',
        response: {
          200: Type.Object({
            current: Type.Union([Type.Integer(), Type.Null()], { description: 'Highest applied version' }),
            pending: Type.Integer(),
            migrations: Type.Array(MigrationRow),
            repeatables: Type.Array(RepeatableRow, {
              description:
                'The repeatable migrations (one SQL function each), applied after the versioned ones',
            }),
          }),
          ...errorResponses(500, 503),
        },
      },
    },
    async () => {
      const dir = deps.migrationsDir ?? MIGRATIONS_DIR;
      const rows = await migrationStatus({ sql: deps.sql, dir });
      const applied = rows.filter((r) => r.state !== 'pending').map((r) => r.version);
      return {
        current: applied.length > 0 ? Math.max(...applied) : null,
        pending: rows.filter((r) => r.state === 'pending').length,
        migrations: rows,
        repeatables: await repeatableStatus({ sql: deps.sql, dir }),
      };
    },
  );
}
