-- Statement trigger of every event table: registers the new rows' ids in event_ids (unique across types and times).
create or replace function sw_register_event_ids() returns trigger
language plpgsql
as $$
begin
  insert into public.event_ids (id, type, occurred_at)
  select id, tg_argv[0], occurred_at from new_rows;
  return null;
end
$$;
