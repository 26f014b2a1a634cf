-- Legacy SpyWatcher SQLite import: runs (jobs), per-table checkpoints and the legacy-id map.

-- One row per import (CLI or POST /v1/imports). Progress is rewritten while it runs so
-- GET /v1/imports/{id} can show it from any service instance.
create table import_runs (
  id uuid primary key,
  source_path text not null,
  -- identifies the legacy database independently of where the file lies (see source-key.ts)
  source_key text,
  dry_run boolean not null default false,
  status text not null default 'queued'
    check (status in ('queued', 'running', 'succeeded', 'failed')),
  options jsonb not null default '{}',
  -- { "<legacy table>": { "done": n, "total": n, "rejected": n, "rowsPerSecond": n } }
  progress jsonb not null default '{}',
  report jsonb,
  error text,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now()
);
create index import_runs_created_idx on import_runs (created_at desc);

-- Resume point per (legacy database, legacy table). Written in the same transaction as the
-- rows of the batch it covers, so after a kill -9 the import continues exactly where the last
-- commit left it. rows_hash is the running order-independent content hash (sum of the first
-- 64 bits of each row's md5 as signed integers) of the rows imported, compared with the
-- same sum over the target rows by verification.
create table import_checkpoints (
  source_key text not null,
  source_table text not null,
  last_key text,
  rows_imported bigint not null default 0,
  rows_rejected bigint not null default 0,
  rows_hash numeric not null default 0,
  -- kind -> count (unparseable_date, out_of_range, orphan, empty_array, ...)
  findings jsonb not null default '{}',
  min_occurred_at timestamptz,
  completed boolean not null default false,
  updated_at timestamptz not null default now(),
  primary key (source_key, source_table)
);

-- Legacy id -> new id for the reference tables (cuid / integer ids -> uuid). When a row with
-- the same natural key (discord_id, guild_id, ip, user_id) already existed, the legacy id
-- maps to that row, so references (Guild.userId -> users.id) always resolve. Event ids are
-- derived from the legacy id (see the README) and carry it in metadata.legacy_id.
create table import_legacy_ids (
  source_table text not null,
  legacy_id text not null,
  target_table text not null,
  target_id uuid not null,
  primary key (source_table, legacy_id)
);
create index import_legacy_ids_target_idx on import_legacy_ids (target_table, target_id);
