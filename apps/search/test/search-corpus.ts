/**
 * A small deterministic chat corpus for the search tests, built from pieces whose tokens are
 * known, so a query can be answered by brute force in JS and compared with the database.
 */
import { copyRows, ensurePartitions, type Queryable } from '@spywatcher/db';
import { mulberry32 } from '@spywatcher/testing/random';
import type { HasValue, TextNode } from '../src/search/parser.ts';

export function uuidFrom(rand: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(rand() * 16).toString(16)).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export const COMMON = ['the', 'and', 'deploy', 'server', 'game', 'tonight', 'lol', 'build'];
export const RARE = ['zebra', 'quartz', 'nebula', 'walrus'];
export const ACCENTED = ['café', 'naïve', 'résumé', 'crème'];
export const EMOJI = ['pepega', 'kekw'];
export const HOSTS = ['youtube.com', 'github.com'];
/** Dotted and underscored identifiers with their lexemes: the whole (joined by "-"), then each part. */
export const IDENTIFIERS = [
  { text: 'node.js', tokens: ['node-js', 'node', 'js'] },
  { text: 'README.md', tokens: ['readme-md', 'readme', 'md'] },
  { text: 'console.log(x)', tokens: ['console-log', 'console', 'log', 'x'] },
  { text: 'snake_case', tokens: ['snake-case', 'snake', 'case'] },
];

export interface CorpusMessage {
  id: string;
  occurredAt: Date;
  messageId: string;
  userId: string;
  username: string;
  channelId: string;
  channelName: string;
  guildId: string;
  content: string;
  attachmentCount: number;
  /** the lexemes in order, as sw_message_tsv produces them */
  tokens: string[];
  mentions: string[];
  has: Record<HasValue, boolean>;
}

export const USERS = [
  { id: '100000000000000001', name: 'alice' },
  { id: '100000000000000002', name: 'bob' },
  { id: '100000000000000003', name: 'carol' },
  { id: '100000000000000004', name: 'dave' },
];
export const CHANNELS = [
  { id: '200000000000000001', name: 'general', guild: '300000000000000001' },
  { id: '200000000000000002', name: 'dev', guild: '300000000000000001' },
  { id: '200000000000000003', name: 'general', guild: '300000000000000002' },
];

const fold = (w: string) => w.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();

export function generateCorpus(n: number, seed = 42, start = Date.UTC(2026, 0, 1)): CorpusMessage[] {
  const rand = mulberry32(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const out: CorpusMessage[] = [];
  for (let k = 0; k < n; k++) {
    const user = pick(USERS);
    const channel = pick(CHANNELS);
    const parts: string[] = [];
    const tokens: string[] = [];
    const mentions: string[] = [];
    const has = { link: false, mention: false, emoji: false, attachment: false, code: false };
    const words = 1 + Math.floor(rand() * 6);
    for (let w = 0; w < words; w++) {
      const r = rand();
      if (r < 0.55) {
        const word = pick(COMMON);
        parts.push(rand() < 0.1 ? word.toUpperCase() : word);
        tokens.push(word);
      } else if (r < 0.6) {
        const word = pick(RARE);
        parts.push(word);
        tokens.push(word);
      } else if (r < 0.7) {
        const word = pick(ACCENTED);
        parts.push(word);
        tokens.push(fold(word));
      } else if (r < 0.77) {
        const u = pick(USERS);
        parts.push(`<@${u.id}>`);
        if (!mentions.includes(u.id)) mentions.push(u.id);
        has.mention = true;
      } else if (r < 0.83) {
        const host = pick(HOSTS);
        parts.push(`https://www.${host}/watch?v=${Math.floor(rand() * 1000)}`);
        tokens.push(host.replace('.', '-'), ...host.split('.'));
        has.link = true;
      } else if (r < 0.89) {
        const e = pick(EMOJI);
        parts.push(`<:${e}:${400000000000000000 + Math.floor(rand() * 1000)}>`);
        tokens.push(e);
        has.emoji = true;
      } else if (r < 0.93) {
        const word = pick(COMMON);
        parts.push(`\`${word}\``);
        tokens.push(word);
        has.code = true;
      } else if (r < 0.96) {
        const id = pick(IDENTIFIERS);
        const code = rand() < 0.5;
        parts.push(code ? `\`${id.text}\`` : id.text);
        tokens.push(...id.tokens);
        has.code ||= code;
      } else {
        const word = `w${Math.floor(rand() * 300)}x`;
        parts.push(`${word}!`);
        tokens.push(word);
      }
    }
    const attachmentCount = rand() < 0.05 ? 1 : 0;
    has.attachment = attachmentCount > 0;
    // some share the previous message's time, so ties on time are exercised
    const previous = out[out.length - 1];
    const occurredAt = previous && rand() < 0.08 ? previous.occurredAt : new Date(start + k * 3_600_000);
    out.push({
      id: uuidFrom(rand),
      occurredAt,
      messageId: String(500000000000000000n + BigInt(k)),
      userId: user.id,
      username: user.name,
      channelId: channel.id,
      channelName: channel.name,
      guildId: channel.guild,
      content: parts.join(' '),
      attachmentCount,
      tokens,
      mentions,
      has,
    });
  }
  return out;
}

export const MESSAGE_COLUMNS = [
  'id',
  'occurred_at',
  'message_id',
  'user_id',
  'username',
  'channel_id',
  'channel_name',
  'guild_id',
  'content',
  'attachment_count',
] as const;

/** What a message's `message_events` row is made of (corpus and benchmark messages alike). */
export type MessageFields = Pick<
  CorpusMessage,
  | 'id'
  | 'occurredAt'
  | 'messageId'
  | 'userId'
  | 'username'
  | 'channelId'
  | 'channelName'
  | 'guildId'
  | 'content'
  | 'attachmentCount'
>;

/** A message's row, in MESSAGE_COLUMNS order. */
export const messageRow = (m: MessageFields) =>
  [
    m.id,
    m.occurredAt,
    m.messageId,
    m.userId,
    m.username,
    m.channelId,
    m.channelName,
    m.guildId,
    m.content,
    m.attachmentCount,
  ] as const;

export async function loadCorpus(sql: Queryable, messages: CorpusMessage[]): Promise<void> {
  await ensurePartitions(
    sql,
    'message',
    messages.map((m) => m.occurredAt),
  );
  await copyRows(sql, 'message_events', MESSAGE_COLUMNS, messages.map(messageRow));
}

/** The lexemes of typed words: a dotted or underscored identifier gives its whole and its parts. */
function lexemes(text: string): string[] {
  return fold(text)
    .split(/\s+/)
    .filter(Boolean)
    .flatMap((w) => {
      const joined = w.replace(/(?<=\p{L})[._](?=[\p{L}\p{N}])|(?<=\p{N})[._](?=\p{L})/gu, '-');
      return joined.includes('-') ? [joined, ...joined.split('-')] : [joined];
    });
}

/**
 * Inserts messages with just these contents (one author and channel), `stepMs` apart from
 * `start`, through the parent table as a writer would: the stored text is computed by the
 * database's current functions and the insert triggers fire.
 */
export async function insertContents(
  sql: Queryable,
  contents: string[],
  start: Date,
  stepMs = 3_600_000,
): Promise<void> {
  const times = contents.map((_, i) => new Date(start.getTime() + i * stepMs));
  await ensurePartitions(sql, 'message', times);
  await sql`
    insert into message_events (id, occurred_at, user_id, username, channel_id, channel_name, guild_id, content)
    select gen_random_uuid(), t, '1', 'alice', '2', 'general', '3', c
    from unnest(${times.map((t) => t.toISOString())}::timestamptz[], ${contents}::text[]) as u(t, c)`;
}

/** Brute-force evaluation of a text node against a message's tokens. */
export function matchesText(node: TextNode, tokens: string[]): boolean {
  switch (node.kind) {
    case 'word': {
      const w = fold(node.text);
      return node.prefix ? tokens.some((t) => t.startsWith(w)) : lexemes(w).every((l) => tokens.includes(l));
    }
    case 'phrase': {
      // each lexeme as a test of one token; a prefix word is one test
      const ws: ((t: string) => boolean)[] = node.words
        ? node.words.flatMap((w) =>
            w.prefix
              ? [(t: string) => t.startsWith(fold(w.text))]
              : lexemes(w.text).map((l) => (t: string) => t === l),
          )
        : lexemes(node.text).map((l) => (t: string) => t === l);
      for (let i = 0; i + ws.length <= tokens.length; i++) {
        if (ws.every((w, j) => w(tokens[i + j]!))) return true;
      }
      return false;
    }
    case 'not':
      return !matchesText(node.node, tokens);
    case 'and':
      return node.nodes.every((n) => matchesText(n, tokens));
    case 'or':
      return node.nodes.some((n) => matchesText(n, tokens));
  }
}

/** Newest first, ties by id descending: the order the API promises. */
export function newestFirst(a: CorpusMessage, b: CorpusMessage): number {
  const dt = b.occurredAt.getTime() - a.occurredAt.getTime();
  if (dt !== 0) return dt;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
