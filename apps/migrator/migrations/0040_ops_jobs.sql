-- Jobs of the ops service (backups, verifications, restores, maintenance, upkeep). The row is
-- the job's durable state: a client polls it over HTTP, and a job cut off by a restart is found
-- still "running" at start-up and marked failed with the reason.
-- The backup catalogue itself is NOT kept here: it lives as manifest files next to the dumps in
-- BACKUP_DIR, so it survives restoring this very database to an older state.
create table ops_jobs (
  id uuid primary key,
  kind text not null check (kind ~ '^[a-z][a-z_:-]*$'),
  status text not null check (status in ('running', 'succeeded', 'failed', 'cancelled')),
  trigger text not null check (trigger in ('http', 'nats', 'schedule', 'cli', 'internal')),
  -- jobs that must not run twice at once (one backup, one vacuum, one restore per target)
  -- share a key; the partial unique index below turns a second start into a conflict
  exclusive_key text,
  params jsonb not null default '{}',
  progress jsonb not null default '{"percent": 0}',
  result jsonb,
  error text,
  requested_by text,
  -- backend running the job's SQL (maintenance), for pg_cancel_backend on cancel
  backend_pid integer,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now()
);

create unique index ops_jobs_one_running on ops_jobs (exclusive_key) where status = 'running';
create index ops_jobs_kind_created on ops_jobs (kind, created_at desc);
create index ops_jobs_created on ops_jobs (created_at desc);
