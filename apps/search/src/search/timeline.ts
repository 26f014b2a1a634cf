import type { Fragment, Queryable } from '@spywatcher/db';
import { EVENT_TYPES, type EventType } from '@spywatcher/events';
import { CursorError, decodeCursor, encodeCursor, type TimelineCursor } from './cursor.ts';
import { SearchInputError } from './messages.ts';
import { and, timeText } from './sql.ts';

export interface TimelineEntry {
  type: EventType;
  id: string;
  occurredAt: string;
  guildId: string | null;
  /** the event's own columns (as stored, without the id, times and log bookkeeping) */
  data: Record<string, unknown>;
}

export interface TimelineOptions {
  types?: EventType[];
  guildId?: string;
  limit?: number;
  cursor?: string;
}

/**
 * One branch per event type. Table names and the column naming the user are fixed here, never
 * taken from the request. A reaction involves two users; the timeline of either shows it.
 */
function branch(sql: Queryable, type: EventType, userId: string): { from: Fragment; user: Fragment } {
  switch (type) {
    case 'presence':
      return { from: sql`presence_events e`, user: sql`e.user_id = ${userId}` };
    case 'typing':
      return { from: sql`typing_events e`, user: sql`e.user_id = ${userId}` };
    case 'message':
      return { from: sql`message_events e`, user: sql`e.user_id = ${userId}` };
    case 'join':
      return { from: sql`join_events e`, user: sql`e.user_id = ${userId}` };
    case 'deleted_message':
      return { from: sql`deleted_message_events e`, user: sql`e.user_id = ${userId}` };
    case 'reaction_time':
      return {
        from: sql`reaction_time_events e`,
        user: sql`(e.observer_id = ${userId} or e.actor_id = ${userId})`,
      };
    case 'role_change':
      return { from: sql`role_change_events e`, user: sql`e.user_id = ${userId}` };
  }
}

const HIDDEN = ['id', 'occurred_at', 'tx', 'position', 'tsv'];

/**
 * Every event of a user, all types merged newest first. Each type contributes at most
 * `limit + 1` rows read from its (user, occurred_at) index below the cursor, so a page costs
 * the same on page 1 and page 1000. Ties on (time, id) are broken by type name.
 */
export async function userTimeline(
  sql: Queryable,
  userId: string,
  options: TimelineOptions = {},
): Promise<{ entries: TimelineEntry[]; nextCursor: string | null }> {
  const limit = Math.min(Math.max(options.limit ?? 50, 1), 200);
  const types = options.types?.length ? [...new Set(options.types)] : [...EVENT_TYPES];
  let cursor: TimelineCursor | null = null;
  try {
    if (options.cursor) cursor = decodeCursor(options.cursor, 'tl');
  } catch (error) {
    if (error instanceof CursorError) throw new SearchInputError(error.message);
    throw error;
  }
  const branches = types.map((type) => {
    const b = branch(sql, type, userId);
    const conds: Fragment[] = [b.user];
    if (options.guildId !== undefined) conds.push(sql`e.guild_id = ${options.guildId}`);
    if (cursor) {
      conds.push(sql`e.occurred_at <= ${cursor.t}::timestamptz`);
      conds.push(sql`((e.occurred_at, e.id) < (${cursor.t}::timestamptz, ${cursor.i}::uuid)
        or ((e.occurred_at, e.id) = (${cursor.t}::timestamptz, ${cursor.i}::uuid) and ${type}::text < ${cursor.y}::text))`);
    }
    return sql`(
      select ${type}::text as type, e.id, e.occurred_at, ${timeText(sql, sql`e.occurred_at`)} as t,
        e.guild_id, to_jsonb(e) - ${HIDDEN}::text[] as data
      from ${b.from}
      where ${and(sql, conds)}
      order by e.occurred_at desc, e.id desc
      limit ${limit + 1})`;
  });
  const union = branches.reduce((a, b) => sql`${a} union all ${b}`);
  const rows = await sql<
    { type: EventType; id: string; t: string; guild_id: string | null; data: Record<string, unknown> }[]
  >`
    select u.type, u.id::text as id, u.t, u.guild_id, u.data
    from (${union}) u
    order by u.occurred_at desc, u.id desc, u.type desc
    limit ${limit + 1}`;
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    entries: page.map((r) => ({
      type: r.type,
      id: r.id,
      occurredAt: r.t,
      guildId: r.guild_id,
      data: r.data,
    })),
    nextCursor:
      rows.length > limit && last ? encodeCursor({ k: 'tl', t: last.t, i: last.id, y: last.type }) : null,
  };
}
