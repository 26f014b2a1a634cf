import { createSql, MigrationError, MigrationFileError, migrate, partitionUpkeep } from '@spywatcher/db';
import { MIGRATIONS_DIR } from '@spywatcher/migrator/migrations';
import { reasonOf, StartFailure } from './failure.ts';

/**
 * Applies pending migrations and creates the event partitions (no retention: npm start never
 * drops data), as `npm run migrate` and `npm run partitions` would. Returns a summary line.
 */
export async function prepareSchema(databaseUrl: string): Promise<string> {
  const sql = createSql({
    url: databaseUrl,
    applicationName: 'spywatcher-start',
    max: 2,
    statementTimeoutMs: 0,
  });
  try {
    const { applied, repeatables } = await migrate({ sql, dir: MIGRATIONS_DIR });
    const created = (await partitionUpkeep(sql, { skipRetention: true })).filter(
      (a) => a.action === 'create',
    );
    // No migration count: it grows with every migration, and the README shows this line.
    const changed = applied.length + repeatables.length > 0;
    return `${changed ? 'migrated to' : 'already at'} the latest version, ${created.length} partition(s) created`;
  } catch (error) {
    const known = error instanceof MigrationError || error instanceof MigrationFileError;
    throw new StartFailure(
      `preparing the schema failed: ${known ? (error as Error).message : reasonOf(error)}`,
      'Nothing was started. npx nx run migrator:status lists what is applied; fix the migration, then npm start again.',
    );
  } finally {
    await sql.end({ timeout: 5 });
  }
}
