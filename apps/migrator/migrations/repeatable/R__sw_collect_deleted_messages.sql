-- Statement trigger of deleted_message_events: records each deleted message id once, so search can leave those messages out.
create or replace function sw_collect_deleted_messages() returns trigger
language plpgsql
as $$
begin
  insert into search_deleted_messages (message_id)
  select distinct message_id from new_rows where message_id is not null
  order by message_id
  on conflict do nothing;
  return null;
end
$$;
