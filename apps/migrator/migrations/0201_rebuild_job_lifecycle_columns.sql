-- Projection rebuilds on the same job lifecycle as ops jobs and import runs (libs/jobs): the
-- owner renews heartbeat_at while the rebuild runs, and a rebuild whose heartbeat stopped is
-- failed as abandoned (no longer "no progress for a minute", which took over a long bulk pass
-- still running). Nullable columns without a default: adding them rewrites nothing.
alter table projection_rebuilds
  add column owner text,
  add column heartbeat_at timestamptz,
  add column cancel_requested_at timestamptz;
