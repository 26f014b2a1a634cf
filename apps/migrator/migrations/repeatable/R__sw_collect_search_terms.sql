-- Statement trigger of message_events: adds the words of the new messages' stored tsv to the did-you-mean vocabulary.
create or replace function sw_collect_search_terms() returns trigger
language plpgsql
as $$
begin
  execute format($q$
    insert into search_terms (term)
    select distinct w
    from (select m.tsv from new_rows r join %I.%I m on m.id = r.id and m.occurred_at = r.occurred_at) s,
         unnest(tsvector_to_array(s.tsv)) w
    where char_length(w) between 3 and 32 and w ~ '^[[:alpha:]][[:alpha:][:digit:]]*$'
    order by w
    on conflict do nothing
  $q$, TG_TABLE_SCHEMA, TG_TABLE_NAME);
  return null;
end
$$;
