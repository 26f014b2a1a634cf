/**
 * Deterministic, realistic chat messages for the search benchmark: Zipf-distributed words
 * (so "the" is in about every second message and most words are rare), Zipf-active users and
 * channels, Discord markup (mentions, links, custom and unicode emoji, code), accents, and a few
 * planted words and phrases the query set relies on. Same seed, same corpus.
 */

import { mulberry32 } from '@spywatcher/testing/random';

const COMMON = `the i to you a and it is that of in lol for this me my be on so just do have what
no not was are with like but yeah can get if go we all your at up ok oh know now good think its one
he they out she how there when about people time game play why lmao would really want see some did
dont from its been got wait yes will make back too right still gonna then well an as im server here
need more only who bot discord chat guys even much today tonight night day thanks thank nice bro
lets new man any fun work love thing also way because over after first help try sure something
never come did always again going last stream match team win lost rank build update fix patch
mod ban role channel voice video music song watch meme post link image pic send message`.split(/\s+/);

/** Sites that links point at. */
const HOSTS = [
  'youtube.com',
  'twitch.tv',
  'github.com',
  'reddit.com',
  'twitter.com',
  'tenor.com',
  'imgur.com',
  'steamcommunity.com',
];
const EMOJI_NAMES = ['pepega', 'kekw', 'pog', 'monkas', 'sadge', 'copium', 'catjam', 'omegalul'];
const UNICODE_EMOJI = ['😂', '🔥', '👍', '❤️', '🎉', '😭', '🤔', '💀'];
const ACCENTED = ['café', 'naïve', 'résumé', 'déjà', 'voilà', 'señor', 'über', 'crème'];
const PHRASES = ['see you tomorrow', 'good game well played', 'merge conflict again', 'brb dinner'];
const DEPLOY = ['deploy', 'deployed', 'deploying', 'deployment'];
/** Planted once in about 40,000 messages. */
export const RARE_WORD = 'xylophone';
/** Occurs in no message. */
export const MISSING_WORD = 'qzxwvjkq';

function syllableWords(count: number, rand: () => number): string[] {
  const onset = [
    'b',
    'c',
    'd',
    'f',
    'g',
    'h',
    'j',
    'k',
    'l',
    'm',
    'n',
    'p',
    'r',
    's',
    't',
    'v',
    'w',
    'z',
    'br',
    'st',
    'tr',
    'ch',
    'sh',
    'gl',
  ];
  const vowel = ['a', 'e', 'i', 'o', 'u', 'ai', 'ou', 'ee', 'oo'];
  const coda = ['', '', 'n', 'r', 's', 't', 'l', 'ck', 'nd', 'ng'];
  const seen = new Set(COMMON);
  const out: string[] = [];
  while (out.length < count) {
    const n = 1 + Math.floor(rand() * 3);
    let w = '';
    for (let i = 0; i < n; i++) {
      w += onset[Math.floor(rand() * onset.length)]! + vowel[Math.floor(rand() * vowel.length)]!;
    }
    w += coda[Math.floor(rand() * coda.length)]!;
    if (w.length < 3 || seen.has(w) || w === RARE_WORD || w === MISSING_WORD) continue;
    seen.add(w);
    out.push(w);
  }
  return out;
}

/** Cumulative Zipf weights for n ranks with exponent s. */
function zipfCdf(n: number, s: number): Float64Array {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    sum += 1 / (i + 1) ** s;
    cdf[i] = sum;
  }
  for (let i = 0; i < n; i++) cdf[i]! /= sum;
  return cdf;
}

function sample(cdf: Float64Array, r: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid]! < r) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export interface GeneratedMessage {
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
}

export interface CorpusShape {
  messages: number;
  start: Date;
  end: Date;
  users: number;
  channels: number;
  guilds: number;
  seed: number;
}

export const userId = (rank: number) => String(100_000_000_000_000_000n + BigInt(rank));
export const channelId = (rank: number) => String(200_000_000_000_000_000n + BigInt(rank));
export const guildId = (rank: number) => String(300_000_000_000_000_000n + BigInt(rank));

/** UUIDv7-like: the time in the first 48 bits, as ingest's publishers do. */
function uuid7(ms: number, rand: () => number): string {
  const hex = ms.toString(16).padStart(12, '0');
  let r = '';
  for (let i = 0; i < 20; i++) r += Math.floor(rand() * 16).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7${r.slice(0, 3)}-${'89ab'[Math.floor(rand() * 4)]}${r.slice(3, 6)}-${r.slice(6, 18)}`;
}

/** Messages in time order (as a live bot would store them). */
export function* generateMessages(shape: CorpusShape): Generator<GeneratedMessage> {
  const rand = mulberry32(shape.seed);
  const vocabulary = [...COMMON, ...syllableWords(20_000, rand)];
  const words = zipfCdf(vocabulary.length, 1.0);
  const users = zipfCdf(shape.users, 1.0);
  const channels = zipfCdf(shape.channels, 0.9);
  const lengths = zipfCdf(30, 0.7);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const span = shape.end.getTime() - shape.start.getTime();
  for (let k = 0; k < shape.messages; k++) {
    const at = shape.start.getTime() + Math.floor((k / shape.messages) * span + rand() * 1000);
    const u = sample(users, rand());
    const c = sample(channels, rand());
    const parts: string[] = [];
    const n = 1 + sample(lengths, rand());
    for (let i = 0; i < n; i++) parts.push(vocabulary[sample(words, rand())]!);
    const r = rand();
    if (r < 0.05) parts.splice(Math.floor(rand() * parts.length), 0, `<@${userId(sample(users, rand()))}>`);
    else if (r < 0.09) parts.push(`https://www.${pick(HOSTS)}/${Math.floor(rand() * 1e9).toString(36)}`);
    else if (r < 0.13)
      parts.push(`<:${pick(EMOJI_NAMES)}:${400_000_000_000_000_000 + Math.floor(rand() * 1000)}>`);
    else if (r < 0.16) parts.push(pick(UNICODE_EMOJI));
    else if (r < 0.18) parts.push(`\`${pick(vocabulary.slice(0, 400))}()\``);
    const p = rand();
    if (p < 0.02) parts.push(pick(ACCENTED));
    else if (p < 0.024) parts.push(pick(PHRASES));
    else if (p < 0.034) parts.splice(Math.floor(rand() * parts.length), 0, pick(DEPLOY));
    if (rand() < 1 / 40_000) parts.push(RARE_WORD);
    if (rand() < 0.03) parts[0] = parts[0]!.charAt(0).toUpperCase() + parts[0]!.slice(1);
    yield {
      id: uuid7(at, rand),
      occurredAt: new Date(at),
      messageId: String(1_100_000_000_000_000_000n + BigInt(k)),
      userId: userId(u),
      username: `user${u}`,
      channelId: channelId(c),
      channelName: `channel-${c % 40}`,
      guildId: guildId(c % shape.guilds),
      content: parts.join(' '),
      attachmentCount: rand() < 0.04 ? 1 : 0,
    };
  }
}
