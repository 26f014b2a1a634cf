-- migrate:no-transaction
-- Dotted and underscored identifiers are indexed whole and by their parts (README, "Text
-- handling"): PostgreSQL's parser keeps "node.js", "console.log" and "README.md" as one host
-- token, so "node" did not find "node.js"; and the markdown step turned "snake_case" into two
-- unrelated words, so the whole identifier could not be asked for. A "." or "_" between a letter
-- and a letter or digit (or a digit and a letter) now becomes "-", which the parser reads as a
-- compound word: the whole ("node-js") and each part ("node", "js") at consecutive positions,
-- so a part, the whole and a phrase around it all match. Search queries go through the same
-- function, so `node.js`, `node-js` and `node_js` ask for the same lexemes. Dots after an "@" in
-- the same word (e-mail addresses) are left alone. A link's host becomes such a compound too,
-- which replaces the host labels that 0020 appended at the end.
--
-- sw_message_search_text keeps the inlined fast path of 0072 for the messages without a link and
-- without a dotted or underscored identifier (their text and lexemes are unchanged); every other
-- message takes sw_message_search_text_full, one expression with every step.
--
-- This file runs outside a transaction: the functions are replaced first (new and updated rows
-- use them at once), then the stored tsv of existing messages is recomputed in batches.

-- The join on its own: snippets highlight in text joined the same way, so a part is marked
-- inside its identifier.
create or replace function sw_join_identifiers(words text) returns text
language sql immutable parallel safe
as $$
  select regexp_replace(words,
    '(?<!@[^\s@]*)(?:(?<=[[:alpha:]])[._](?=[[:alnum:]])|(?<=[[:digit:]])[._](?=[[:alpha:]]))', '-', 'g')
$$;

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

-- Recomputes the stored tsv where it changed: partition by partition, 2,000 keys at a time, each
-- batch its own short transaction. Only messages holding "://", "." or "_" can change, and an
-- unchanged row is not written. The update rewrites content with itself, which makes PostgreSQL
-- recompute the generated columns; the words it adds go to the did-you-mean vocabulary, as the
-- insert trigger would have done.
-- Safe on a live database because each batch takes only the ROW EXCLUSIVE lock every insert takes
-- (readers and writers go on) and row locks on messages nobody updates, and lock_timeout makes a
-- batch that would queue behind DDL give up after 2 s and retry instead of stalling the table.
do $$
declare
  part regclass;
  last_id uuid;
  last_at timestamptz;
  ids uuid[];
  ats timestamptz[];
  tries int;
begin
  for part in
    select relid from pg_partition_tree('public.message_events'::regclass) where isleaf order by relid::text
  loop
    last_id := null;
    last_at := null;
    loop
      execute format(
        'select array_agg(id order by id, occurred_at), array_agg(occurred_at order by id, occurred_at)
         from (select id, occurred_at from %s
               where $1::uuid is null or (id, occurred_at) > ($1, $2)
               order by id, occurred_at limit 2000) k', part)
        into ids, ats using last_id, last_at;
      exit when ids is null;
      tries := 0;
      loop
        begin
          perform set_config('lock_timeout', '2s', true);
          execute format(
            'with changed as (
               update %s m set content = m.content
               where m.id = any($1) and m.content ~ ''://|[._]''
                 and m.tsv is distinct from public.sw_message_tsv(m.content)
               returning m.tsv)
             insert into public.search_terms (term)
             select distinct w from changed, unnest(tsvector_to_array(changed.tsv)) w
             where char_length(w) between 3 and 32 and w ~ ''^[[:alpha:]][[:alpha:][:digit:]]*$''
             order by w
             on conflict do nothing', part)
            using ids;
          exit;
        exception when lock_not_available then
          tries := tries + 1;
          if tries >= 30 then
            raise exception 'recomputing the search text of % waited for a lock 30 times; run migrate again when the DDL holding it is done', part;
          end if;
          perform pg_sleep(1);
        end;
      end loop;
      commit;
      last_id := ids[cardinality(ids)];
      last_at := ats[cardinality(ats)];
    end loop;
  end loop;
end
$$;
