-- The import's set-based companion of sw_register_event_ids, run once over a bulk-loaded partition.
create or replace function sw_register_event_ids_bulk(loaded regclass) returns void
language plpgsql
as $$
declare
  event_type text := substring((select relname from pg_class where oid = loaded) from '^(.+)_events_p[0-9]+$');
begin
  if event_type is null then
    raise exception 'cannot tell the event type of %', loaded;
  end if;
  execute format('insert into public.event_ids (id, type, occurred_at) select id, %L, occurred_at from %s',
                 event_type, loaded);
end
$$;
