import type { Rng } from './random.ts';

/**
 * Chat text that looks like Discord: several languages, mentions, custom and unicode emoji,
 * links, inline code and code blocks, and the odd long message, so search and ingest see
 * realistic token counts and markup.
 */
const PHRASES: Record<string, readonly string[]> = {
  en: [
    'anyone up for a raid tonight?',
    'lol that was hilarious',
    'did you see the patch notes',
    'I think the server is lagging again',
    'good morning everyone',
    'can someone help me with my build',
    'brb getting coffee',
    'that boss fight took forever',
    'who is streaming later',
    'new video is up, check it out',
    'the deploy failed again, looking into it',
    'thanks for the help yesterday',
  ],
  es: [
    '¿alguien juega esta noche?',
    'jajaja qué buena partida',
    'buenos días a todos',
    'el servidor va muy lento hoy',
    'gracias por la ayuda',
    'mañana hay torneo, apúntense',
  ],
  de: [
    'hat jemand Lust auf eine Runde?',
    'guten Morgen zusammen',
    'das Update ist endlich da',
    'ich bin gleich zurück',
    'der Server spinnt schon wieder',
    'schöne Grüße aus München',
  ],
  fr: [
    "quelqu'un veut jouer ce soir ?",
    'bonjour à tous',
    "c'était incroyable ce match",
    'je reviens dans cinq minutes',
    'merci pour le coup de main',
  ],
  pt: ['bom dia galera', 'alguém online pra jogar?', 'que partida incrível', 'valeu pela ajuda'],
  ja: ['おはようございます', '今夜レイドに行く人いますか？', 'ありがとう！', 'サーバーが重いです'],
  ru: ['всем привет', 'кто сегодня играет?', 'спасибо за помощь', 'сервер опять лагает'],
};
const LANGUAGE_WEIGHTS = { en: 60, es: 10, de: 8, fr: 7, pt: 6, ja: 5, ru: 4 } as const;

const EMOJI_NAMES = ['pepega', 'kekw', 'poggers', 'catjam', 'monkaS', 'sadge', 'wave', 'thonk'];
const UNICODE_EMOJI = ['😂', '🔥', '👍', '🎉', '😭', '❤️', '👀', '🙏'];
const HOSTS = [
  'github.com',
  'youtube.com',
  'twitch.tv',
  'store.steampowered.com',
  'docs.python.org',
  'imgur.com',
];
const CODE: readonly [string, string][] = [
  ['js', 'const x = await fetch(url);\nconsole.log(await x.json());'],
  ['py', 'for i in range(10):\n    print(i * i)'],
  ['sql', 'select count(*) from messages where guild_id = $1;'],
  ['rust', 'fn main() {\n    println!("hello");\n}'],
  ['', 'Error: connect ECONNREFUSED 127.0.0.1:5432'],
];

export interface TextContext {
  /** Ids of users that can be mentioned. */
  userIds: readonly string[];
  snowflake: () => string;
}

function sentence(rng: Rng): string {
  const lang = rng.weighted(LANGUAGE_WEIGHTS);
  return rng.pick(PHRASES[lang]!);
}

export function messageText(rng: Rng, ctx: TextContext): string {
  if (rng.chance(0.03)) return ''; // attachment or sticker only
  const parts: string[] = [];
  if (rng.chance(0.15)) parts.push(`<@${rng.pick(ctx.userIds)}>`);
  parts.push(sentence(rng));
  if (rng.chance(0.25)) parts.push(sentence(rng));
  if (rng.chance(0.12)) parts.push(`<:${rng.pick(EMOJI_NAMES)}:${ctx.snowflake()}>`);
  if (rng.chance(0.15)) parts.push(rng.pick(UNICODE_EMOJI));
  if (rng.chance(0.08)) parts.push(`https://${rng.pick(HOSTS)}/${rng.hex(4)}`);
  if (rng.chance(0.05)) parts.push(`\`${rng.pick(['npm ci', 'git pull', 'docker ps', '/roll 20'])}\``);
  if (rng.chance(0.04)) {
    const [lang, code] = rng.pick(CODE);
    parts.push(`\n\`\`\`${lang}\n${code}\n\`\`\``);
  }
  if (rng.chance(0.01)) {
    // the occasional wall of text
    const wall: string[] = [];
    while (wall.join(' ').length < 1500) wall.push(sentence(rng));
    parts.push(wall.join(' '));
  }
  return parts.join(' ').slice(0, 4000);
}
