-- Cheaper message search columns and vocabulary for the same results (measured for the legacy
-- import, whose PostgreSQL time is mostly spent on message rows).
--
-- sw_message_search_text (0020) has a scalar subquery (the link hosts), so PostgreSQL cannot
-- inline it: every call ran the SQL-function executor, and all five regular expressions ran
-- on every message. Most messages hold no link and no `<`, and then the link and
-- `<...>` replacements cannot change anything (each pattern needs "://" or "<", and no
-- replacement brings either back). The function is now a CASE that PostgreSQL inlines into the
-- generated tsv column and into search queries: without "://" it applies only the `<...>`
-- replacements (when there is a "<") and the markdown one; with "://" it calls the previous
-- body, unchanged, now named sw_message_search_text_links. Measured on 40,000 messages without
-- links: 7.2 µs -> 0.8 µs a message; with links the cost is the same as before.
--
-- sw_message_mention_ids likewise returns '{}' at once when there is no "<@" (its pattern
-- needs one), and calls the previous body otherwise.
--
-- Every name is schema-qualified: these functions run inside generated columns while
-- pg_restore loads data with an empty search_path (see 0041).

create function sw_message_search_text_links(content text) returns text
language sql immutable parallel safe
as $$
  select regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
    coalesce(content, ''),
    '<a?:([A-Za-z0-9_]+):[0-9]+>', ' \1 ', 'g'),          -- custom emoji -> its name
    '<(@[!&]?|#)[0-9]+>', ' ', 'g'),                        -- user/role/channel mentions
    '<t:-?[0-9]+(:[tTdDfFR])?>', ' ', 'g'),                 -- timestamps
    'https?://(www\.)?([^/\s?#:<>]+)[^\s<>]*', ' \2 ', 'gi'), -- links -> host
    '[`*_~|>]+', ' ', 'g')                                  -- markdown punctuation
  || coalesce((
    -- each link host once more, split into its labels, so one label is a searchable word
    select ' ' || string_agg(replace(m[2], '.', ' '), ' ')
    from regexp_matches(coalesce(content, ''), 'https?://(www\.)?([^/\s?#:<>]+)', 'gi') m
  ), '')
$$;

create or replace function sw_message_search_text(content text) returns text
language sql immutable parallel safe
as $$
  select case
    when strpos(coalesce(content, ''), '://') > 0 then public.sw_message_search_text_links(content)
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

create function sw_message_mention_ids_all(content text) returns text[]
language sql immutable parallel safe
as $$
  select coalesce(array_agg(distinct m[1]), '{}')
  from regexp_matches(coalesce(content, ''), '<@!?([0-9]+)>', 'g') m
$$;

create or replace function sw_message_mention_ids(content text) returns text[]
language sql immutable parallel safe
as $$
  select case
    when strpos(coalesce(content, ''), '<@') > 0 then public.sw_message_mention_ids_all(content)
    else '{}'::text[]
  end
$$;
