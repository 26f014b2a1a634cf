-- Every user id mentioned in a message; sw_message_mention_ids calls it only when the text holds "<@".
-- Stored data depends on it (message_events.mention_ids): see apps/migrator/README.md, "Repeatable migrations".
create or replace function sw_message_mention_ids_all(content text) returns text[]
language sql immutable parallel safe
as $$
  select coalesce(array_agg(distinct m[1]), '{}')
  from regexp_matches(coalesce(content, ''), '<@!?([0-9]+)>', 'g') m
$$;
