-- Set-wise equivalents of the statement-level insert triggers, for bulk loads.
--
-- The legacy import loads a partition period into a standalone table before attaching it
-- (apps/migrator/src/import/bulk.ts). Firing the parent's statement triggers on every COPY of
-- that load cost the vocabulary ~5 µs a message (capturing the transition table, joining it
-- back for the stored tsvector, unnesting every tsvector). Instead, when a trigger function
-- <name> has a companion <name>_bulk(regclass), the load calls it once over the loaded table,
-- in the same transaction, and does not create the trigger there. The companion must leave the
-- same rows behind as the trigger firing for every statement of the load would.

-- The same words as sw_collect_search_terms (0023) takes from new rows, read with ts_stat,
-- which walks the stored tsvectors without building an array per message (~0.5 µs a message).
create function sw_collect_search_terms_bulk(loaded regclass) returns void
language plpgsql
as $$
begin
  insert into public.search_terms (term)
  select word
  from ts_stat(format('select tsv from %s', loaded))
  where char_length(word) between 3 and 32 and word ~ '^[[:alpha:]][[:alpha:][:digit:]]*$'
  order by word
  on conflict do nothing;
end
$$;

-- The same ids as sw_collect_deleted_messages (0021).
create function sw_collect_deleted_messages_bulk(loaded regclass) returns void
language plpgsql
as $$
begin
  execute format($q$
    insert into public.search_deleted_messages (message_id)
    select distinct message_id from %s where message_id is not null
    order by message_id
    on conflict do nothing
  $q$, loaded);
end
$$;
