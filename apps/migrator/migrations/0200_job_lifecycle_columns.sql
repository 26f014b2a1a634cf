-- One job lifecycle (libs/jobs) for ops jobs and import runs: each table carries the same
-- columns (owner, heartbeat_at, cancel_requested_at beside id, status, error, finished_at,
-- updated_at), so one heartbeat and one abandon rule apply to both while their HTTP answers stay
-- as they are. The columns are nullable without a default: adding them rewrites nothing.
alter table ops_jobs add column cancel_requested_at timestamptz;

alter table import_runs
  add column owner text,
  add column heartbeat_at timestamptz,
  add column cancel_requested_at timestamptz;
