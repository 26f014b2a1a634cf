-- The import's set-based companion of sw_collect_deleted_messages, run once over a bulk-loaded partition.
create or replace function sw_collect_deleted_messages_bulk(loaded regclass) returns void
language plpgsql
as $$
begin
  execute format($q$
    insert into public.search_deleted_messages (message_id)
    select distinct message_id from %s where message_id is not null
    order by message_id
    on conflict do nothing
  $q$, loaded);
end
$$;
