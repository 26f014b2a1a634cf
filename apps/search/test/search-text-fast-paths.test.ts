import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// sw_message_search_text and sw_message_mention_ids take shortcuts (migrations 0070, 0145) for
// messages without "://", a dotted or underscored identifier, "<" or "<@". Their results must stay
// exactly those of the full expressions, kept as sw_message_search_text_full (compared by the
// lexemes: the shortcut turns a run of "_" into one space, the full expression each "_") and
// sw_message_mention_ids_all: compared here on generated text dense in the characters the
// patterns care about.

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

const PIECES = [
  'http',
  'https',
  'HTTPS',
  'hTTp',
  's',
  '://',
  'www.',
  'WWW.',
  'wWw.',
  'w',
  '.',
  '..',
  'a',
  'Zoë',
  'é',
  'x-y',
  '_',
  '0',
  '/',
  '?',
  '#',
  ':',
  '<',
  '>',
  '@',
  '<@1>',
  '<@!22>',
  '<@&3>',
  '<#4>',
  '<:e:5>',
  '<a:f_1:6>',
  '<t:7:R>',
  '<t:-8>',
  '@everyone',
  ' ',
  '\t',
  '\n',
  '\u00a0',
  '\u2003',
  '`',
  '*',
  '~',
  '|',
  '🎉',
  'youtube.com',
  'node.js',
  'snake_case',
  'a@b.co',
  'v1.2',
  '3',
  'discord.gg/abc',
  '%20',
  '=',
  '&',
];

describe('message search text fast paths', () => {
  it('give exactly the full expressions results', async () => {
    const [r] = await db.sql.begin(async (tx) => {
      // the same connection for the seed and the query: the same corpus every run
      await tx`select setseed(0.42)`;
      return tx<
        {
          n: number;
          links: number;
          one_link: number;
          dotted: number;
          mentions: number;
          tsv_diff: number;
          mention_diff: number;
        }[]
      >`
      with corpus as (
        select string_agg((${PIECES}::text[])[1 + floor(random() * ${PIECES.length})::int], '') as content
        from generate_series(1, 40000) g, lateral generate_series(1, 1 + (g % 17)) k
        group by g
        union all
        select unnest(array[null, '', 'http://', 'https://www.', 'https://a.b/<@1>https://c.d', 'HtTpS://WwW.x.Y',
                            'see https://www.youtube.com/watch?v=1 **now**', '<http://x.y>', 'a://b'])
      )
      select count(*)::int as n,
             count(*) filter (where content like '%://%')::int as links,
             count(*) filter (where content like '%://%' and content not like '%://%://%')::int as one_link,
             count(*) filter (where cardinality(sw_message_mention_ids_all(content)) > 0)::int as mentions,
             count(*) filter (where content not like '%://%' and content ~ '[[:alnum:]][._][[:alpha:]]')::int as dotted,
             count(*) filter (where sw_message_tsv(content) is distinct from
                              to_tsvector('public.sw_chat'::regconfig, sw_message_search_text_full(content)))::int as tsv_diff,
             count(*) filter (where sw_message_mention_ids(content) is distinct from sw_message_mention_ids_all(content))::int as mention_diff
      from corpus`;
    });
    expect(r).toMatchObject({ tsv_diff: 0, mention_diff: 0 });
    // the corpus exercises every path
    expect(r!.one_link).toBeGreaterThan(5000);
    expect(r!.links - r!.one_link).toBeGreaterThan(500);
    expect(r!.n - r!.links).toBeGreaterThan(5000);
    expect(r!.dotted).toBeGreaterThan(1000);
    expect(r!.n - r!.links - r!.dotted).toBeGreaterThan(5000);
    expect(r!.mentions).toBeGreaterThan(1000);
  });
});
