-- One id, one event, forever: a registry of every stored event id across the seven event tables.
--
-- An event table's primary key is (id, occurred_at) (a partitioned table's unique keys must hold
-- the partition key), so on its own it lets the same id be stored again with another time, or in
-- another type's table. event_ids holds each id once, with the type and time it was stored as.
-- Writers never fill it themselves: a statement-level trigger on each event table registers the
-- rows every INSERT or COPY adds, so no writer can forget, and a second row for a known id fails
-- the whole statement with a unique violation naming the id. Ingest reads the registry before it
-- writes, to answer `duplicate` or `conflict` instead of failing (apps/ingest/src/store.ts).
--
-- Entries are kept when retention drops a partition: an id stays spent after its event is gone.
--
-- Rows stored before this migration are registered here. Where the same id was already stored
-- more than once (another time or type), the first one recorded is registered, the others stay
-- where they are (nothing is deleted) and are listed in event_id_collisions for an operator; a
-- NOTICE gives their number. On a populated database the backfill reads every event table while
-- holding the lock that creating the triggers takes (writers wait until it commits).

create table event_ids (
  id uuid primary key,
  type text not null check (type in ('presence', 'typing', 'message', 'join', 'deleted_message', 'reaction_time', 'role_change')),
  occurred_at timestamptz not null
);

-- Statement-level, over the transition table: one set-wise insert per statement, the cost of
-- one index entry per row. The type is the trigger's argument, so one function serves all tables.
create function sw_register_event_ids() returns trigger
language plpgsql
as $$
begin
  insert into public.event_ids (id, type, occurred_at)
  select id, tg_argv[0], occurred_at from new_rows;
  return null;
end
$$;

-- The companion the legacy import calls once over a period it loaded into a standalone table
-- (see 0071): the table is named <type>_events_p<date>, which gives the type.
create function sw_register_event_ids_bulk(loaded regclass) returns void
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

create trigger presence_events_register_ids after insert on presence_events
  referencing new table as new_rows for each statement execute function sw_register_event_ids('presence');
create trigger typing_events_register_ids after insert on typing_events
  referencing new table as new_rows for each statement execute function sw_register_event_ids('typing');
create trigger message_events_register_ids after insert on message_events
  referencing new table as new_rows for each statement execute function sw_register_event_ids('message');
create trigger join_events_register_ids after insert on join_events
  referencing new table as new_rows for each statement execute function sw_register_event_ids('join');
create trigger deleted_message_events_register_ids after insert on deleted_message_events
  referencing new table as new_rows for each statement execute function sw_register_event_ids('deleted_message');
create trigger reaction_time_events_register_ids after insert on reaction_time_events
  referencing new table as new_rows for each statement execute function sw_register_event_ids('reaction_time');
create trigger role_change_events_register_ids after insert on role_change_events
  referencing new table as new_rows for each statement execute function sw_register_event_ids('role_change');

create temp table _stored_events on commit drop as
select id, 'presence'::text as type, occurred_at, recorded_at from presence_events
union all select id, 'typing', occurred_at, recorded_at from typing_events
union all select id, 'message', occurred_at, recorded_at from message_events
union all select id, 'join', occurred_at, recorded_at from join_events
union all select id, 'deleted_message', occurred_at, recorded_at from deleted_message_events
union all select id, 'reaction_time', occurred_at, recorded_at from reaction_time_events
union all select id, 'role_change', occurred_at, recorded_at from role_change_events;

insert into event_ids (id, type, occurred_at)
select distinct on (id) id, type, occurred_at
from _stored_events
order by id, recorded_at, occurred_at, type;

-- Rows whose id was registered for another row (stored before this migration; none can be after).
create table event_id_collisions (
  id uuid not null,
  type text not null,
  occurred_at timestamptz not null,
  recorded_at timestamptz not null,
  primary key (id, type, occurred_at)
);
insert into event_id_collisions (id, type, occurred_at, recorded_at)
select s.id, s.type, s.occurred_at, s.recorded_at
from _stored_events s
join event_ids e on e.id = s.id
where (s.type, s.occurred_at) is distinct from (e.type, e.occurred_at);

do $$
declare
  n bigint := (select count(*) from event_id_collisions);
begin
  if n > 0 then
    raise notice '% stored event rows share their id with an earlier row; they are kept and listed in event_id_collisions', n;
  end if;
end
$$;
