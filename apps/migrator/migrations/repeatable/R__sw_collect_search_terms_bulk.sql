-- The import's set-based companion of sw_collect_search_terms: the vocabulary of a bulk-loaded partition from ts_stat.
create or replace function sw_collect_search_terms_bulk(loaded regclass) returns void
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
