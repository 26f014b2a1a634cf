-- Jobs safe with several ops instances. The instance running a job renews heartbeat_at; a
-- running job whose heartbeat is older than the abandon threshold is failed, with the reason, by
-- whichever instance notices (instead of every instance failing every running job at start-up).
-- scratch lists what the job created outside this table (scratch databases, partial files), so
-- whoever abandons a job can remove its leftovers. The same three columns could carry import runs
-- and projection rebuilds later.
alter table ops_jobs
  add column owner text,
  add column heartbeat_at timestamptz,
  add column scratch jsonb not null default '[]';

create index ops_jobs_running_heartbeat on ops_jobs (heartbeat_at) where status = 'running';

-- The message search GIN indexes serve a documented query path (apps/search) that may see no
-- scans for days on a quiet deployment; the health report reads this comment and never proposes
-- them as unused.
comment on index message_events_tsv_idx is 'used by message search (apps/search: full-text query)';
comment on index message_events_mentions_idx is 'used by message search (apps/search: mentions: filter)';
comment on index search_terms_trgm_idx is 'used by message search (apps/search: close-word suggestions)';
