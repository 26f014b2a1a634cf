-- The tsvector behind the generated column message_events.tsv; every name is schema-qualified so pg_restore
-- (search_path = '') can compute it. Stored data depends on it: see apps/migrator/README.md, "Repeatable migrations".
create or replace function sw_message_tsv(content text) returns tsvector
language sql immutable parallel safe
as $$ select to_tsvector('public.sw_chat'::regconfig, public.sw_message_search_text(content)) $$;
