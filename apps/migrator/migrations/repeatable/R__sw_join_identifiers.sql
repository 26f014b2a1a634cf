-- Turns the . or _ inside an identifier into -, which the text parser reads as a compound word.
-- Stored data depends on it (message_events.tsv): see apps/migrator/README.md, "Repeatable migrations".
create or replace function sw_join_identifiers(words text) returns text
language sql immutable parallel safe
as $$
  select regexp_replace(words,
    '(?<!@[^\s@]*)(?:(?<=[[:alpha:]])[._](?=[[:alnum:]])|(?<=[[:digit:]])[._](?=[[:alpha:]]))', '-', 'g')
$$;
