import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseQuery, searchMessages } from '../src/search/index.ts';
import { SNIPPET_WORDS, WORDS_BEFORE } from '../src/search/snippet.ts';
import { insertContents } from './search-corpus.ts';

let db: TestDatabase;

const words = (from: number, n: number) => Array.from({ length: n }, (_, i) => `w${from + i}`).join(' ');

const MESSAGES = [
  'the cafe downstairs',
  `${words(0, 20)} a zebra ran ${words(20, 40)}`,
  'install node.js first, then call console.log(x)',
  'a cafe with free drinks and nitro',
  'snake_case and <b>markup</b> in quartz',
  `filterable ${words(100, 50)}`,
  '   ok   walrus\n\tnext   line',
];

beforeAll(async () => {
  db = await createTestDatabase();
  await insertContents(db.sql, MESSAGES, new Date(Date.UTC(2026, 1, 1)));
});

afterAll(async () => {
  await db?.drop();
});

async function snippets(q: string): Promise<string[]> {
  const res = await searchMessages(db.sql, parseQuery(q), { limit: 100 }, q);
  return res.results.map((r) => r.snippet);
}

describe('snippets', () => {
  it('keep short words before the first match', async () => {
    expect(await snippets('cafe downstairs')).toEqual(['the <mark>cafe</mark> <mark>downstairs</mark>']);
  });

  it('start at a word boundary a few words before a match deep in a long message', async () => {
    const [s] = await snippets('zebra');
    const before = Array.from({ length: WORDS_BEFORE - 1 }, (_, i) => `w${20 - WORDS_BEFORE + 1 + i}`);
    expect(s).toBe(
      `… ${[...before, 'a', '<mark>zebra</mark>', 'ran'].join(' ')} ${words(20, SNIPPET_WORDS - WORDS_BEFORE - 2)} …`,
    );
  });

  it('mark the parts of an identifier and show it as written', async () => {
    expect(await snippets('node')).toEqual(['install <mark>node</mark>.js first, then call console.log(x)']);
    expect(await snippets('node.js console')).toEqual([
      'install <mark>node</mark>.<mark>js</mark> first, then call <mark>console</mark>.log(x)',
    ]);
    expect(await snippets('snake_case')).toEqual([
      '<mark>snake</mark>_<mark>case</mark> and &lt;b&gt;markup&lt;/b&gt; in quartz',
    ]);
  });

  it('do not mark excluded words', async () => {
    expect(await snippets('cafe -"free nitro" -downstairs')).toEqual([
      'a <mark>cafe</mark> with free drinks and nitro',
    ]);
  });

  it('keep the whitespace inside and trim it outside', async () => {
    expect(await snippets('walrus')).toEqual(['ok   <mark>walrus</mark>\n\tnext   line']);
  });

  it('without words, start at the beginning and end after the word limit', async () => {
    const res = await searchMessages(db.sql, parseQuery('during:2026-02-01 -zebra -cafe'), { limit: 100 });
    const long = res.results.find((r) => r.content.startsWith('filterable'));
    expect(long?.snippet).toBe(`filterable ${words(100, SNIPPET_WORDS - 1)} …`);
  });
});
