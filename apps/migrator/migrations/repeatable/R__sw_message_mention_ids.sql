-- The user ids a message mentions, behind the generated column message_events.mention_ids.
-- Stored data depends on it: see apps/migrator/README.md, "Repeatable migrations".
create or replace function sw_message_mention_ids(content text) returns text[]
language sql immutable parallel safe
as $$
  select case
    when strpos(coalesce(content, ''), '<@') > 0 then public.sw_message_mention_ids_all(content)
    else '{}'::text[]
  end
$$;
