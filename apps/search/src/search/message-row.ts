import type { Fragment, Queryable } from '@spywatcher/db';
import { timeText } from './sql.ts';

/** A stored message as search results and message context return it. */
export interface StoredMessage {
  id: string;
  messageId: string | null;
  occurredAt: string;
  userId: string;
  username: string;
  channelId: string;
  channelName: string;
  guildId: string;
  content: string;
  attachmentCount: number;
}

/** The columns `messageColumns` selects. */
export interface MessageRow {
  id: string;
  message_id: string | null;
  t: string;
  user_id: string;
  username: string;
  channel_id: string;
  channel_name: string;
  guild_id: string;
  content: string;
  attachment_count: number;
}

/** The columns of `message_events m` behind a StoredMessage (`t` is the exact time as text, for cursors). */
export const messageColumns = (sql: Queryable): Fragment => sql`
  m.id::text as id, m.message_id, m.occurred_at, ${timeText(sql, sql`m.occurred_at`)} as t, m.user_id, m.username,
  m.channel_id, m.channel_name, m.guild_id, m.content, m.attachment_count`;

/** True when the message with Discord id `messageId` was deleted later (legacy rows have no id). */
export const deletedLater = (sql: Queryable, messageId: Fragment): Fragment =>
  sql`(${messageId} is not null and exists (
    select 1 from search_deleted_messages d where d.message_id = ${messageId}))`;

export const toStoredMessage = (r: MessageRow): StoredMessage => ({
  id: r.id,
  messageId: r.message_id,
  occurredAt: r.t,
  userId: r.user_id,
  username: r.username,
  channelId: r.channel_id,
  channelName: r.channel_name,
  guildId: r.guild_id,
  content: r.content,
  attachmentCount: r.attachment_count,
});
