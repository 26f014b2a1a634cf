// The partition API is typed by the contract's event types; re-exported for the callers that use both.
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
  CopyBuffer,
  type CopySource,
  type CopyValue,
  copyRows,
  encodeCopyField,
  encodeCopyRow,
  encodeCopyRows,
  escapeCopyText,
  type StagingShape,
  stageRows,
} from './copy.ts';
export { ensureDatabase } from './ensure-database.ts';
export { type Fragment, identifiers, join } from './fragments.ts';
export { quoteIdent } from './identifier.ts';
export { jsonb } from './json.ts';
export { inLanes } from './lanes.ts';
export {
  type MigrationFile,
  MigrationFileError,
  REPEATABLE_DIR,
  type RepeatableFile,
  readMigrationFiles,
  readRepeatableFiles,
  splitStatements,
} from './migrations/files.ts';
export {
  type AppliedMigration,
  DEFAULT_MIGRATION_LOCK_TIMEOUT_MS,
  type MigrateResult,
  MigrationError,
  type MigrationState,
  type MigrationStatusRow,
  type MigratorDeps,
  migrate,
  migrationStatus,
  pad,
  type RepeatableState,
  type RepeatableStatusRow,
  repeatableStatus,
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
