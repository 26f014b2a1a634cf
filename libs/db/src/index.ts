export {
  createSql,
  databaseNameOf,
  type Queryable,
  reconnectDelayS,
  redactUrl,
  type Sql,
  type SqlOptions,
  type TransactionSql,
  withDatabase,
} from './client.ts';
export {
  type AppendOptions,
  appendRows,
  type CopyValue,
  copyRows,
  encodeCopyField,
  encodeCopyRows,
} from './copy.ts';
export { ensureDatabase } from './ensure-database.ts';
export { EVENT_TYPES, type EventType, eventTable, isEventType } from './event-tables.ts';
export { inLanes } from './lanes.ts';
export {
  type MigrationFile,
  MigrationFileError,
  readMigrationFiles,
  splitStatements,
} from './migrations/files.ts';
export {
  type AppliedMigration,
  type MigrateResult,
  MigrationError,
  type MigrationState,
  type MigrationStatusRow,
  type MigratorDeps,
  migrate,
  migrationStatus,
  pad,
} from './migrations/migrator.ts';
export {
  ensurePartitions,
  importedPartitions,
  isMissingPartitionError,
  listPartitions,
  markPartitionsImported,
  PartitionCache,
  type PartitionInfo,
  type PartitionPolicy,
  partitionPolicies,
  partitionUpkeep,
  type RetentionDecision,
  RetentionError,
  retentionDecisions,
  setRetention,
  type UpkeepAction,
  type UpkeepOptions,
} from './partitions.ts';
export { type StandbyLag, type StandbyStatus, standbyLags, standbyStatus } from './replication.ts';
export { isRetryableTransactionError, type TransactionOptions, withTransaction } from './transaction.ts';

/** Absolute path of the SQL migrations shipped in apps/migrator/migrations. */
export const MIGRATIONS_DIR = new URL('../../../apps/migrator/migrations', import.meta.url).pathname;
