-- has: filters alone or with one other filter (guild:, in:, a date) are not selective enough
-- for any btree: "has:link guild:X" read ~25,000 rows to count 1,000 matches on 2,000,000
-- messages. Small partial indexes (each holds the few percent of messages with that kind of
-- content) let the planner AND them with the guild/channel/user bitmaps, or walk them newest
-- first.
create index message_events_has_link_idx on message_events (occurred_at) where has_link;
create index message_events_has_mention_idx on message_events (occurred_at) where has_mention;
create index message_events_has_emoji_idx on message_events (occurred_at) where has_emoji;
create index message_events_has_code_idx on message_events (occurred_at) where has_code;
create index message_events_has_attachment_idx on message_events (occurred_at) where attachment_count > 0;

-- Which Discord messages were deleted, as one small unpartitioned table kept by a statement-level
-- trigger. "Deleted later" flags and is:deleted probe it by primary key; probing
-- deleted_message_events itself would plan and visit every weekly partition (53 for a year) for
-- each search. Retention dropping deleted_message_events partitions does not remove ids here:
-- a message stays marked as deleted for as long as the message itself is kept.
create table search_deleted_messages (
  message_id text primary key
);

insert into search_deleted_messages (message_id)
select distinct message_id from deleted_message_events where message_id is not null
on conflict do nothing;

create function sw_collect_deleted_messages() returns trigger
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

create trigger deleted_message_events_search
  after insert on deleted_message_events
  referencing new table as new_rows
  for each statement execute function sw_collect_deleted_messages();
