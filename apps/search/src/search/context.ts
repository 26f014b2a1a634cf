import type { Queryable } from '@spywatcher/db';
import { timeText } from './sql.ts';

export interface ContextMessage {
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
  deleted: boolean;
}

export interface MessageContext {
  message: ContextMessage;
  /** older messages of the channel, oldest first */
  before: ContextMessage[];
  /** newer messages of the channel, oldest first */
  after: ContextMessage[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SNOWFLAKE = /^[0-9]{1,25}$/;

/** An id the context endpoint accepts: the event id (UUID) or Discord's message id (digits). */
export function isMessageRef(id: string): boolean {
  return UUID.test(id) || SNOWFLAKE.test(id);
}

interface Row {
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
  deleted: boolean;
}

const toMessage = (r: Row): ContextMessage => ({
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
  deleted: r.deleted,
});

/**
 * A message with up to `before` older and `after` newer messages of its channel, or null when
 * no message has that id. Neighbours come from the (channel_id, occurred_at) index, so the
 * cost does not depend on the channel's size.
 */
export async function messageContext(
  sql: Queryable,
  id: string,
  before = 5,
  after = 5,
): Promise<MessageContext | null> {
  const cols = sql`
    m.id::text as id, m.message_id, m.occurred_at, ${timeText(sql, sql`m.occurred_at`)} as t, m.user_id,
    m.username, m.channel_id, m.channel_name, m.guild_id, m.content, m.attachment_count,
    (m.message_id is not null and exists (
      select 1 from search_deleted_messages d where d.message_id = m.message_id)) as deleted`;
  const match = UUID.test(id) ? sql`m.id = ${id}::uuid` : sql`m.message_id = ${id}`;
  // a Discord message id may have been stored twice under different event ids: take the first
  const [target] = await sql<Row[]>`
    select ${cols} from message_events m where ${match} order by m.occurred_at, m.id limit 1`;
  if (!target) return null;
  const [older, newer] = await Promise.all([
    sql<Row[]>`
      select ${cols} from message_events m
      where m.channel_id = ${target.channel_id}
        and m.occurred_at <= ${target.t}::timestamptz
        and (m.occurred_at, m.id) < (${target.t}::timestamptz, ${target.id}::uuid)
      order by m.occurred_at desc, m.id desc
      limit ${before}`,
    sql<Row[]>`
      select ${cols} from message_events m
      where m.channel_id = ${target.channel_id}
        and m.occurred_at >= ${target.t}::timestamptz
        and (m.occurred_at, m.id) > (${target.t}::timestamptz, ${target.id}::uuid)
      order by m.occurred_at, m.id
      limit ${after}`,
  ]);
  return {
    message: toMessage(target),
    before: older.reverse().map(toMessage),
    after: newer.map(toMessage),
  };
}
