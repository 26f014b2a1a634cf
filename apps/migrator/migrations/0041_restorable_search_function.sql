-- Makes the database restorable with pg_restore (found by the ops restore drill).
--
-- pg_dump runs every restore with search_path = '' so that nothing resolves by accident. The
-- generated column message_events.tsv is computed while the data is loaded, by sw_message_tsv,
-- whose body called sw_message_search_text unqualified: with the empty search_path that call
-- fails ("function sw_message_search_text(text) does not exist") and the restore stops.
-- The body is the same as before (0004) with the inner call schema-qualified, like the text
-- search configuration already was. A SQL function keeps being inlined (no SET search_path,
-- which would cost a configuration save/restore per row on the write path).
-- Functions used by generated columns, check constraints or index expressions must qualify
-- every name they use.
create or replace function sw_message_tsv(content text) returns tsvector
language sql immutable parallel safe
as $$ select to_tsvector('public.sw_chat'::regconfig, public.sw_message_search_text(content)) $$;
