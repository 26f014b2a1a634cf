-- sw_message_search_text for messages with a link or a dotted or underscored identifier: every step.
-- Stored data depends on it (message_events.tsv): see apps/migrator/README.md, "Repeatable migrations".
create or replace function sw_message_search_text_full(content text) returns text
language sql immutable parallel safe
as $$
  select translate(public.sw_join_identifiers(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
    coalesce(content, ''),
    '<a?:([A-Za-z0-9_]+):[0-9]+>', ' \1 ', 'g'),             -- custom emoji -> its name
    '<(@[!&]?|#)[0-9]+>', ' ', 'g'),                           -- user/role/channel mentions
    '<t:-?[0-9]+(:[tTdDfFR])?>', ' ', 'g'),                    -- timestamps
    'https?://(www\.)?([^/\s?#:<>]+)[^\s<>]*', ' \2 ', 'gi'),  -- links -> host
    '[`*~|>]+', ' ', 'g')),                                    -- markdown punctuation but _
    '_', ' ')                                                  -- the remaining _ is markdown
$$;
