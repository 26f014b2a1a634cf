export {
  DEFAULT_ABANDON_AFTER_MS,
  DEFAULT_HEARTBEAT_MS,
  type HeartbeatOptions,
  JobHeartbeat,
} from './heartbeat.ts';
export { type JobColumns, type JobEnd, JobTable, type JobTableOptions } from './job-table.ts';
export { ownerName, ownerProcessGone } from './owner.ts';
