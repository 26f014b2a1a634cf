export {
  count,
  identifier,
  type Merge,
  type Projection,
  type Source,
  type SqlPart,
  sqlPart,
  type TableSpec,
  type ValueSpec,
} from './projection.ts';
export {
  getRebuildJob,
  largestFirst,
  planChunks,
  RebuildConflictError,
  type RebuildJob,
  type RebuildOptions,
  type RebuildProgress,
  type RebuildReport,
  rebuildProjection,
  rebuildProjections,
  startRebuildJob,
} from './rebuild.ts';
export {
  type ProjectionRunner,
  type RunnerLogger,
  type RunnerOptions,
  startProjectionRunner,
} from './runner.ts';
export { prepareTables, type TablesState } from './schema.ts';
export { projectionTables, tableSpecs } from './statements.ts';
export {
  BEHIND_CAP,
  type ProjectionStatus,
  projectionStatus,
  registerProjectionMetrics,
  type TypeStatus,
} from './status.ts';
