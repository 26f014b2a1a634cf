-- Retention is opt-in per table (DESIGN.md: no default deletes history the platform holds).
--
-- 1. The retention 0003 shipped (90 days, 30 for deleted messages) becomes null, keep forever.
--    An install whose table still holds exactly that value gets null: nothing tells a value an
--    operator chose from the shipped one, and keeping history is the side that can be undone.
--    Any other value was set by an operator and stays. An operator who wants the old value back
--    sets it again (nx run migrator:partitions -- retention TABLE DAYS).
-- 2. Partitions holding imported legacy rows are listed in imported_partitions, and upkeep never
--    drops one of them unless the table's drop_imported is set, even when its retention has passed.
--    Partitions imported before this migration are found by their rows (metadata.legacy_id): one
--    scan of each event partition, stopping at its first imported row.

alter table event_partitioning
  add column drop_imported boolean not null default false;

update event_partitioning p set retention_days = null
from (values
  ('presence_events', 90),
  ('typing_events', 90),
  ('message_events', 90),
  ('join_events', 90),
  ('deleted_message_events', 30),
  ('reaction_time_events', 90),
  ('role_change_events', 90)
) as shipped (table_name, days)
where p.table_name = shipped.table_name and p.retention_days = shipped.days;

-- One row per partition a legacy import wrote to, written in the transaction of its rows.
create table imported_partitions (
  partition_name text primary key,
  parent text not null references event_partitioning (table_name),
  -- the legacy database (import_checkpoints.source_key); null when found by this migration
  source_key text,
  imported_at timestamptz not null default now()
);

do $$
declare
  part record;
  found boolean;
begin
  for part in
    select c.relname as name, p.relname as parent
    from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
    join pg_class p on p.oid = i.inhparent
    join event_partitioning e on e.table_name = p.relname
    where p.relnamespace = current_schema()::regnamespace
  loop
    execute format('select exists (select 1 from %I where metadata ? %L)', part.name, 'legacy_id') into found;
    if found then
      insert into imported_partitions (partition_name, parent) values (part.name, part.parent);
    end if;
  end loop;
end
$$;
