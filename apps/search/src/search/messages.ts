import type { Fragment, Queryable } from '@spywatcher/db';
import {
  CursorError,
  decodeCursor,
  encodeCursor,
  type NewestCursor,
  type RelevanceCursor,
  type TimeKey,
} from './cursor.ts';
import {
  deletedLater,
  type MessageRow,
  messageColumns,
  type StoredMessage,
  toStoredMessage,
} from './message-row.ts';
import type { HasValue, ParsedQuery, Ref, TextNode } from './parser.ts';
import { positiveWords } from './parser.ts';
import { type Slice, timeSlices } from './partitions.ts';
import { excerpt, restoreMarks, withoutMarks } from './snippet.ts';
import { and, MARK_START, MARK_STOP, snippetHtml, timeText } from './sql.ts';
import { suggestWords, type WordSuggestion } from './suggest.ts';

/** Totals are exact up to this many matches and reported as "1000+" beyond. */
export const COUNT_CAP = 1000;
/** Relevance ranks the newest this-many matches at a time (a window), never the whole corpus. */
export const RELEVANCE_WINDOW = 1000;

export type SortOrder = 'newest' | 'relevance';

export interface SearchOptions {
  sort?: SortOrder;
  limit?: number;
  cursor?: string;
  /** Skip the capped count (e.g. when paging and the caller kept the first total). */
  count?: boolean;
}

export interface MessageHit extends StoredMessage {
  snippet: string;
  deleted: boolean;
  score?: number;
}

export interface SearchResult {
  results: MessageHit[];
  total: { count: number; capped: boolean; display: string } | null;
  nextCursor: string | null;
  didYouMean: { query: string; words: WordSuggestion[] } | null;
}

export class SearchInputError extends Error {
  readonly position: number | undefined;
  readonly expected: string | undefined;
  constructor(message: string, position?: number, expected?: string) {
    super(message);
    this.name = 'SearchInputError';
    this.position = position;
    this.expected = expected;
  }
}

/** The tsquery of a text node, built in SQL from parameters (never from spliced text). */
function tsqueryOf(sql: Queryable, node: TextNode): Fragment {
  switch (node.kind) {
    case 'word':
      // the parser allows only letters and digits in a prefix, so ":*" cannot meet tsquery syntax
      return node.prefix
        ? sql`to_tsquery('public.sw_chat', ${node.text} || ':*')`
        : sql`plainto_tsquery('public.sw_chat', sw_message_search_text(${node.text}))`;
    case 'phrase':
      // a prefix inside a phrase: each word's tsquery, chained by "followed by"
      return node.words
        ? node.words
            .map((w) =>
              w.prefix
                ? sql`to_tsquery('public.sw_chat', ${w.text} || ':*')`
                : sql`phraseto_tsquery('public.sw_chat', sw_message_search_text(${w.text}))`,
            )
            .reduce((a, b) => sql`tsquery_phrase(${a}, ${b})`)
        : sql`phraseto_tsquery('public.sw_chat', sw_message_search_text(${node.text}))`;
    case 'not':
      return sql`(!! ${tsqueryOf(sql, node.node)})`;
    case 'and':
      return node.nodes.map((n) => tsqueryOf(sql, n)).reduce((a, b) => sql`(${a} && ${b})`);
    case 'or':
      return node.nodes.map((n) => tsqueryOf(sql, n)).reduce((a, b) => sql`(${a} || ${b})`);
  }
}

/** The node without its negations: what snippets mark (an excluded word is never a match). */
function positiveOnly(node: TextNode): TextNode | null {
  switch (node.kind) {
    case 'not':
      return null;
    case 'and':
    case 'or': {
      const nodes = node.nodes.map(positiveOnly).filter((n) => n !== null);
      return nodes.length === 0 ? null : { kind: node.kind, nodes };
    }
    default:
      return node;
  }
}

/** Only negations: such a query cannot use the text index and is walked newest-first. */
function hasPositiveText(node: TextNode | null): boolean {
  if (!node) return false;
  switch (node.kind) {
    case 'not':
      return false;
    case 'and':
    case 'or':
      return node.nodes.some(hasPositiveText);
    default:
      return true;
  }
}

interface Resolved {
  /** the tsquery expression; constant-folded by the planner, which then sees the real words */
  tsquery: Fragment | null;
  users: { include: string[][]; exclude: string[] };
  channels: { include: string[]; exclude: string[] };
  mentions: { include: string[][]; exclude: string[] };
}

async function resolveRefs(
  sql: Queryable,
  refs: Ref[],
  kind: 'user' | 'channel',
): Promise<{ ref: Ref; ids: string[] }[]> {
  return Promise.all(
    refs.map(async (ref) => {
      if (ref.id !== undefined) return { ref, ids: [ref.id] };
      const rows =
        kind === 'user'
          ? await sql<{ id: string }[]>`
              select distinct id from (
                (select user_id as id from message_events where lower(username) = lower(${ref.name!}) limit 5000)
                union all
                select discord_id from users where lower(username) = lower(${ref.name!})
              ) s limit 100`
          : await sql<{ id: string }[]>`
              select distinct id from (
                select channel_id as id from message_events where lower(channel_name) = lower(${ref.name!}) limit 5000
              ) s limit 100`;
      return { ref, ids: rows.map((r) => r.id) };
    }),
  );
}

/** Turns names into ids (one short statement per name; none for ids). */
async function resolve(sql: Queryable, q: ParsedQuery): Promise<Resolved> {
  const [fromIn, fromEx, inIn, inEx, menIn, menEx] = await Promise.all([
    resolveRefs(sql, q.from.include, 'user'),
    resolveRefs(sql, q.from.exclude, 'user'),
    resolveRefs(sql, q.in.include, 'channel'),
    resolveRefs(sql, q.in.exclude, 'channel'),
    resolveRefs(sql, q.mentions.include, 'user'),
    resolveRefs(sql, q.mentions.exclude, 'user'),
  ]);
  return {
    tsquery: q.text ? tsqueryOf(sql, q.text) : null,
    // several from: are alternatives (like Discord); each name may stand for several ids
    users: {
      include: fromIn.length ? [fromIn.flatMap((r) => r.ids)] : [],
      exclude: fromEx.flatMap((r) => r.ids),
    },
    channels: { include: inIn.flatMap((r) => r.ids), exclude: inEx.flatMap((r) => r.ids) },
    // several mentions: must all be mentioned
    mentions: { include: menIn.map((r) => r.ids), exclude: menEx.flatMap((r) => r.ids) },
  };
}

function firstPosition(node: TextNode): number {
  switch (node.kind) {
    case 'and':
    case 'or':
      return firstPosition(node.nodes[0]!);
    default:
      return node.position;
  }
}

/** Text between two backticks: inline code or a code block (a lone backtick is not code). */
const CODE_PATTERN = '`[^`]+`';

/**
 * The has: definitions (README, "Query language"). has_mention is a user or role mention,
 * @everyone or @here, not a channel link; has_code (any backtick) lets the partial index narrow
 * the rows before the pattern decides.
 */
const HAS_SQL: Record<HasValue, (sql: Queryable) => Fragment> = {
  link: (sql) => sql`m.has_link`,
  mention: (sql) => sql`m.has_mention`,
  emoji: (sql) => sql`m.has_emoji`,
  code: (sql) => sql`(m.has_code and m.content ~ ${CODE_PATTERN})`,
  attachment: (sql) => sql`m.attachment_count > 0`,
};

const deletedExists = (sql: Queryable) =>
  sql`exists (select 1 from search_deleted_messages d where d.message_id = m.message_id)`;

/** Every condition of the query on `message_events m` (no cursor). */
function conditions(sql: Queryable, q: ParsedQuery, r: Resolved): Fragment[] {
  const c: Fragment[] = [];
  if (r.tsquery !== null) c.push(sql`m.tsv @@ ${r.tsquery}`);
  for (const ids of r.users.include) c.push(sql`m.user_id = any(${ids}::text[])`);
  if (r.users.exclude.length) c.push(sql`m.user_id <> all(${r.users.exclude}::text[])`);
  if (q.in.include.length) c.push(sql`m.channel_id = any(${r.channels.include}::text[])`);
  if (r.channels.exclude.length) c.push(sql`m.channel_id <> all(${r.channels.exclude}::text[])`);
  if (q.guild.include.length) c.push(sql`m.guild_id = any(${q.guild.include}::text[])`);
  if (q.guild.exclude.length) c.push(sql`m.guild_id <> all(${q.guild.exclude}::text[])`);
  for (const ids of r.mentions.include) c.push(sql`m.mention_ids && ${ids}::text[]`);
  if (r.mentions.exclude.length) c.push(sql`not (m.mention_ids && ${r.mentions.exclude}::text[])`);
  for (const h of q.has.include) c.push(HAS_SQL[h](sql));
  for (const h of q.has.exclude) c.push(sql`not ${HAS_SQL[h](sql)}`);
  if (q.since) c.push(sql`m.occurred_at >= ${q.since}::timestamptz`);
  if (q.until) c.push(sql`m.occurred_at < ${q.until}::timestamptz`);
  if (q.deleted === true) c.push(sql`m.message_id is not null and ${deletedExists(sql)}`);
  if (q.deleted === false) c.push(sql`not (m.message_id is not null and ${deletedExists(sql)})`);
  return c;
}

/** Keyset bound below `key` in (occurred_at desc, id desc); the plain time bound lets partitions be pruned. */
function before(sql: Queryable, key: TimeKey, inclusive = false): Fragment {
  return inclusive
    ? sql`m.occurred_at <= ${key.t}::timestamptz and (m.occurred_at, m.id) <= (${key.t}::timestamptz, ${key.i}::uuid)`
    : sql`m.occurred_at <= ${key.t}::timestamptz and (m.occurred_at, m.id) < (${key.t}::timestamptz, ${key.i}::uuid)`;
}

interface Row extends MessageRow {
  headline: string;
  deleted: boolean;
  rank?: string;
}

/**
 * Snippet and "deleted later" for the returned page only, in one statement after the page is
 * known (the deleted check spans every deleted_message partition, so it is planned once).
 * PostgreSQL marks the matches of `highlight` in the whole message; the excerpt is cut in
 * snippet.ts.
 */
async function decorate(sql: Queryable, rows: Row[], highlight: Fragment | null): Promise<Row[]> {
  if (rows.length === 0) return rows;
  const text = sql`sw_join_identifiers(translate(u.content, ${MARK_START + MARK_STOP}, ''))`;
  const headline =
    highlight === null
      ? sql`''`
      : sql`ts_headline('public.sw_chat', ${text}, ${highlight},
          ${`StartSel=${MARK_START}, StopSel=${MARK_STOP}, HighlightAll=true`})`;
  const decorated = await sql<{ ord: string; headline: string; deleted: boolean }[]>`
    select u.ord::text as ord, ${headline} as headline,
      ${deletedLater(sql, sql`u.message_id`)} as deleted
    from unnest(${rows.map((r) => r.content)}::text[], ${rows.map((r) => r.message_id)}::text[])
      with ordinality as u(content, message_id, ord)`;
  for (const d of decorated) {
    const row = rows[Number(d.ord) - 1]!;
    row.headline = excerpt(
      highlight === null ? withoutMarks(row.content) : restoreMarks(row.content, d.headline),
    );
    row.deleted = d.deleted;
  }
  return rows;
}

function toHit(row: Row): MessageHit {
  const hit: MessageHit = {
    ...toStoredMessage(row),
    snippet: snippetHtml(row.headline),
    deleted: row.deleted,
  };
  if (row.rank !== undefined) hit.score = Number(row.rank);
  return hit;
}

/** The slice's time range on `m` (constants, so the planner prunes to its partitions). */
function sliceRange(sql: Queryable, slice: Slice): Fragment {
  const parts: Fragment[] = [];
  if (slice.from !== null) parts.push(sql`m.occurred_at >= ${slice.from}::timestamptz`);
  if (slice.to !== null) parts.push(sql`m.occurred_at < ${slice.to}::timestamptz`);
  return and(sql, parts);
}

/** Counts up to COUNT_CAP + 1 matches, slice by slice newest first, stopping once past the cap. */
async function countCapped(sql: Queryable, where: Fragment, slices: Slice[]): Promise<SearchResult['total']> {
  let n = 0;
  for (const slice of slices) {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from (
        select 1 from message_events m where ${where} and ${sliceRange(sql, slice)} limit ${COUNT_CAP + 1 - n}
      ) s`;
    n += row!.n;
    if (n > COUNT_CAP) break;
  }
  return n > COUNT_CAP
    ? { count: COUNT_CAP, capped: true, display: `${COUNT_CAP}+` }
    : { count: n, capped: false, display: String(n) };
}

async function newestPage(
  sql: Queryable,
  where: Fragment,
  limit: number,
  cursor: NewestCursor | null,
  slices: Slice[],
): Promise<{ rows: Row[]; next: string | null }> {
  const bound = cursor ? sql`and ${before(sql, cursor)}` : sql``;
  const rows: Row[] = [];
  for (const slice of slices) {
    if (cursor && slice.from !== null && Date.parse(slice.from) > Date.parse(cursor.t)) continue;
    rows.push(
      ...(await sql<Row[]>`
        select p.*
        from (
          select ${messageColumns(sql)}
          from message_events m
          where ${where} ${bound} and ${sliceRange(sql, slice)}
          order by m.occurred_at desc, m.id desc
          limit ${limit + 1 - rows.length}
        ) p
        order by p.occurred_at desc, p.id desc`),
    );
    if (rows.length > limit) break;
  }
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    rows: page,
    next: rows.length > limit && last ? encodeCursor({ k: 'new', t: last.t, i: last.id }) : null,
  };
}

/** Bound of `m` in (occurred_at desc, id desc) at or above `key`. */
function notBefore(sql: Queryable, key: TimeKey): Fragment {
  return sql`m.occurred_at >= ${key.t}::timestamptz and (m.occurred_at, m.id) >= (${key.t}::timestamptz, ${key.i}::uuid)`;
}

/** Safety cap for a window re-read from a cursor (late inserts can only add a few rows to it). */
const WINDOW_HARD_CAP = RELEVANCE_WINDOW * 5;

/**
 * Relevance over bounded windows. A window is first taken as the newest RELEVANCE_WINDOW matches
 * at or below an upper key; from then on it is the fixed time range [oldest, newest] of those
 * rows, carried in the cursor. Rows are ranked inside the window; once it is used up, the next
 * window starts below its oldest row. Messages arriving later (above the window) never shift
 * pages, and a late message inside a window's range can only join it, never push a row out.
 */
async function relevancePage(
  sql: Queryable,
  where: Fragment,
  tsquery: Fragment,
  limit: number,
  cursor: RelevanceCursor | null,
): Promise<{ rows: Row[]; next: string | null }> {
  const out: (Row & { w: TimeKey; l: TimeKey })[] = [];
  // the window to read: a fixed range from the cursor, or the newest matches below `below`
  let range: { upper: TimeKey; lower: TimeKey } | null = cursor ? { upper: cursor.w, lower: cursor.l } : null;
  let below: TimeKey | null = null;
  let after: RelevanceCursor | null = cursor;
  for (let round = 0; round < 3 && out.length <= limit; round++) {
    const bound: Fragment = range
      ? sql`and ${before(sql, range.upper, true)} and ${notBefore(sql, range.lower)}`
      : below
        ? sql`and ${before(sql, below)}`
        : sql``;
    const windowLimit = range ? WINDOW_HARD_CAP : RELEVANCE_WINDOW;
    const afterRank = after
      ? sql`where (c.rank, c.occurred_at, c.id::uuid) < (${after.r}::numeric, ${after.t}::timestamptz, ${after.i}::uuid)`
      : sql``;
    const rows: (Row & Edge)[] = await sql<(Row & Edge)[]>`
      with cand as materialized (
        select ${messageColumns(sql)}, round(ts_rank(m.tsv, ${tsquery}, 1)::numeric, 9) as rank
        from message_events m
        where ${where} ${bound}
        order by m.occurred_at desc, m.id desc
        limit ${windowLimit}
      ),
      edge as (
        select count(*)::int as n,
          (select t from cand order by occurred_at desc, id desc limit 1) as newest_t,
          (select id from cand order by occurred_at desc, id desc limit 1) as newest_i,
          (select t from cand order by occurred_at, id limit 1) as oldest_t,
          (select id from cand order by occurred_at, id limit 1) as oldest_i
        from cand
      )
      select p.*, edge.*
      from (
        select c.* from cand c ${afterRank}
        order by c.rank desc, c.occurred_at desc, c.id desc
        limit ${limit + 1 - out.length}
      ) p cross join edge
      order by p.rank desc, p.occurred_at desc, p.id desc`;
    // the window's edges come with every row; with no row left in this window ask for them alone
    const edge: Edge =
      rows[0] ??
      (
        await sql<Edge[]>`
          select count(*)::int as n,
            (array_agg(t order by occurred_at desc, id desc))[1] as newest_t,
            (array_agg(id order by occurred_at desc, id desc))[1] as newest_i,
            (array_agg(t order by occurred_at, id))[1] as oldest_t,
            (array_agg(id order by occurred_at, id))[1] as oldest_i
          from (
            select m.id::text as id, m.occurred_at, ${timeText(sql, sql`m.occurred_at`)} as t
            from message_events m
            where ${where} ${bound}
            order by m.occurred_at desc, m.id desc
            limit ${windowLimit}
          ) s`
      )[0]!;
    if (edge.n === 0) break;
    const window: { upper: TimeKey; lower: TimeKey } = range ?? {
      upper: { t: edge.newest_t, i: edge.newest_i },
      lower: { t: edge.oldest_t, i: edge.oldest_i },
    };
    for (const r of rows) out.push({ ...r, w: window.upper, l: window.lower });
    // a freshly taken window that is not full was the last one: nothing older matches
    if (!range && edge.n < RELEVANCE_WINDOW) break;
    below = window.lower;
    range = null;
    after = null;
  }
  const page = out.slice(0, limit);
  const last = page[page.length - 1];
  return {
    rows: page,
    next:
      out.length > limit && last
        ? encodeCursor({ k: 'rel', r: last.rank!, t: last.t, i: last.id, w: last.w, l: last.l })
        : null,
  };
}

interface Edge {
  n: number;
  newest_t: string;
  newest_i: string;
  oldest_t: string;
  oldest_i: string;
}

/**
 * Runs a parsed query: one page newest-first (default) or by relevance, a capped count and,
 * when nothing matches, did-you-mean suggestions. `sql` should be a pool whose statements are
 * planned with their actual values (see apps/search/README.md: the search pool does not prepare statements).
 */
export async function searchMessages(
  sql: Queryable,
  q: ParsedQuery,
  options: SearchOptions = {},
  input?: string,
): Promise<SearchResult> {
  const sort = options.sort ?? 'newest';
  const limit = Math.min(Math.max(options.limit ?? 25, 1), 100);
  let cursor: NewestCursor | RelevanceCursor | null = null;
  const relevance = sort === 'relevance' && hasPositiveText(q.text);
  try {
    if (options.cursor) cursor = decodeCursor(options.cursor, relevance ? 'rel' : 'new');
  } catch (error) {
    if (error instanceof CursorError) throw new SearchInputError(error.message);
    throw error;
  }
  const [r, slices] = await Promise.all([
    resolve(sql, q),
    timeSlices(sql, q.since?.toISOString() ?? null, q.until?.toISOString() ?? null),
  ]);
  const where = and(sql, conditions(sql, q, r));
  // an empty tsquery (only punctuation typed) matches nothing: checked alongside, not before
  const [tsqueryText, page, total] = await Promise.all([
    r.tsquery ? sql<{ q: string }[]>`select (${r.tsquery})::text as q` : Promise.resolve(null),
    relevance
      ? relevancePage(sql, where, r.tsquery!, limit, cursor as RelevanceCursor | null)
      : newestPage(sql, where, limit, cursor as NewestCursor | null, slices),
    options.count === false ? Promise.resolve(null) : countCapped(sql, where, slices),
  ]);
  if (tsqueryText?.[0]?.q === '') {
    const first = firstPosition(q.text!);
    throw new SearchInputError(
      `the query has no searchable words at position ${first}`,
      first,
      'a word with letters or digits',
    );
  }
  const marked = q.text ? positiveOnly(q.text) : null;
  const [rows, unknownWords] = await Promise.all([
    decorate(sql, page.rows, marked ? tsqueryOf(sql, marked) : null),
    total?.count === 0 && !cursor ? suggestWords(sql, positiveWords(q.text)) : Promise.resolve([]),
  ]);
  const didYouMean =
    unknownWords.length > 0 ? { query: rewrite(input, unknownWords), words: unknownWords } : null;
  return { results: rows.map(toHit), total, nextCursor: page.next, didYouMean };
}

/** The query as typed with each unknown word replaced by its best suggestion. */
function rewrite(input: string | undefined, words: WordSuggestion[]): string {
  if (input === undefined) return words.map((w) => w.suggestions[0] ?? w.word).join(' ');
  let out = input;
  for (const w of [...words].sort((a, b) => b.position - a.position)) {
    if (w.suggestions.length === 0) continue;
    out = out.slice(0, w.position) + w.suggestions[0] + out.slice(w.position + w.word.length);
  }
  return out;
}
