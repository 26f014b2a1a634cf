import type { Queryable } from '@spywatcher/db';
import {
  deletedLater,
  type MessageRow,
  messageColumns,
  type StoredMessage,
  toStoredMessage,
} from './message-row.ts';

export interface ContextMessage extends StoredMessage {
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

interface Row extends MessageRow {
  deleted: boolean;
}

const toMessage = (r: Row): ContextMessage => ({ ...toStoredMessage(r), deleted: r.deleted });

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
  const cols = sql`${messageColumns(sql)}, ${deletedLater(sql, sql`m.message_id`)} as deleted`;
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
