-- A message's text as search reads it (Discord markup rewritten); fast paths for the common shapes.
-- Stored data depends on it (message_events.tsv): see apps/migrator/README.md, "Repeatable migrations".
create or replace function sw_message_search_text(content text) returns text
language sql immutable parallel safe
as $$
  select case
    when strpos(coalesce(content, ''), '://') > 0
      or coalesce(content, '') ~ '[[:alnum:]][._][[:alpha:]]|[[:alpha:]][._][[:digit:]]'
      then public.sw_message_search_text_full(content)
    when strpos(coalesce(content, ''), '<') > 0 then
      regexp_replace(regexp_replace(regexp_replace(regexp_replace(
        coalesce(content, ''),
        '<a?:([A-Za-z0-9_]+):[0-9]+>', ' \1 ', 'g'),
        '<(@[!&]?|#)[0-9]+>', ' ', 'g'),
        '<t:-?[0-9]+(:[tTdDfFR])?>', ' ', 'g'),
        '[`*_~|>]+', ' ', 'g')
    else regexp_replace(coalesce(content, ''), '[`*_~|>]+', ' ', 'g')
  end
$$;
