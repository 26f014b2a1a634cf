-- Message search, second cut of the chat normalisation (see README, "Search").
--
-- 0004 turned a link into its host as one token ("www.youtube.com"), so searching "youtube"
-- found nothing. The host is now kept whole (so "youtube.com" matches) and also split into its
-- labels without "www" (so "youtube" matches). Everything else is as before: custom emoji become
-- their name, mentions/channels/timestamps drop out of the text, markdown punctuation is
-- removed, and sw_chat folds accents. No stemming on purpose (README explains why).
--
-- The generated tsv depends on the function, so the column is dropped and added again; nothing
-- is deployed yet and on a populated database this rewrites message_events once.

alter table message_events drop column tsv;

create or replace function sw_message_search_text(content text) returns text
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

alter table message_events
  add column tsv tsvector generated always as (sw_message_tsv(content)) stored;
create index message_events_tsv_idx on message_events using gin (tsv);

-- Flags for has:/mentions: filters, extracted once at write time.
create function sw_message_mention_ids(content text) returns text[]
language sql immutable parallel safe
as $$
  select coalesce(array_agg(distinct m[1]), '{}')
  from regexp_matches(coalesce(content, ''), '<@!?([0-9]+)>', 'g') m
$$;

alter table message_events
  add column mention_ids text[] generated always as (sw_message_mention_ids(content)) stored,
  add column has_link boolean generated always as (content ~* 'https?://[^\s]') stored,
  add column has_mention boolean generated always as (content ~ '<@[!&]?[0-9]+>|@everyone|@here') stored,
  add column has_emoji boolean generated always as (
    content ~ '<a?:[A-Za-z0-9_]+:[0-9]+>|[\U0001F300-\U0001FAFF\u2600-\u27BF\U0001F1E6-\U0001F1FF]'
  ) stored,
  add column has_code boolean generated always as (content ~ '`') stored;

create index message_events_mentions_idx on message_events using gin (mention_ids);

-- Newest-first walks over every channel (search, filters-only queries) and keyset cursors on
-- (occurred_at, id).
create index message_events_time_idx on message_events (occurred_at, id);
-- from:<username> and in:<channel name> resolve names to ids through these.
create index message_events_username_idx on message_events (lower(username));
create index message_events_channel_name_idx on message_events (lower(channel_name));

-- Did-you-mean vocabulary: every word that occurs in some message, kept by a statement-level
-- trigger (one insert per batch or COPY, not per row), with a trigram index for "close words".
-- Words are inserted in sorted order so concurrent writers take the unique-index locks in the
-- same order and cannot deadlock. Retention does not remove words: a suggestion may then find
-- nothing, which is harmless.
create table search_terms (
  term text primary key
);
create index search_terms_trgm_idx on search_terms using gin (term gin_trgm_ops);

create function sw_collect_search_terms() returns trigger
language plpgsql
as $$
begin
  insert into search_terms (term)
  select distinct w
  -- generated columns read as null in a partitioned table's transition table (PostgreSQL 15),
  -- so the words are taken from the content again
  from new_rows r, unnest(tsvector_to_array(sw_message_tsv(r.content))) w
  where char_length(w) between 3 and 32 and w ~ '^[[:alpha:]][[:alpha:][:digit:]]*$'
  order by w
  on conflict do nothing;
  return null;
end
$$;

create trigger message_events_search_terms
  after insert on message_events
  referencing new table as new_rows
  for each statement execute function sw_collect_search_terms();
