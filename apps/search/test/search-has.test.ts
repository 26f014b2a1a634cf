import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseQuery, searchMessages } from '../src/search/index.ts';
import { insertContents } from './search-corpus.ts';

// The has: definitions as the README states them, one message per case.

let db: TestDatabase;

const MESSAGES: Record<string, string> = {
  user: 'ping <@123456789012345678> please',
  nickname: 'ping <@!123456789012345678> please',
  role: 'ping <@&223456789012345678> team',
  everyone: '@everyone standup now',
  here: '@here lunch?',
  channel: 'see <#323456789012345678> for that',
  inline: 'run `npm ci` first',
  block: '```js\nconsole.log(1)\n```',
  lone: 'it`s a typo, not code',
  link: 'docs at https://example.com/a',
  bare: 'example.com without a scheme',
  custom: 'nice <:pepega:423456789012345678>',
  unicode: 'party 🎉',
  plain: 'nothing special here',
};

beforeAll(async () => {
  db = await createTestDatabase();
  await insertContents(db.sql, Object.values(MESSAGES), new Date(Date.UTC(2026, 2, 1)));
});

afterAll(async () => {
  await db?.drop();
});

async function kinds(q: string): Promise<string[]> {
  const res = await searchMessages(db.sql, parseQuery(q), { limit: 100 }, q);
  const byContent = new Map(Object.entries(MESSAGES).map(([k, v]) => [v, k]));
  return res.results.map((r) => byContent.get(r.content)!).sort();
}

describe('has: definitions', () => {
  it('has:mention is a user or role mention, @everyone or @here — not a channel link', async () => {
    expect(await kinds('has:mention')).toEqual(['everyone', 'here', 'nickname', 'role', 'user']);
  });

  it('has:code is inline code or a code block — not a lone backtick', async () => {
    expect(await kinds('has:code')).toEqual(['block', 'inline']);
    expect(await kinds('-has:code')).not.toContain('inline');
    expect(await kinds('-has:code')).toContain('lone');
  });

  it('has:link is an http(s) link, has:emoji a custom or Unicode emoji', async () => {
    expect(await kinds('has:link')).toEqual(['link']);
    expect(await kinds('has:emoji')).toEqual(['custom', 'unicode']);
    expect(await kinds('has:mention has:code')).toEqual([]);
  });
});
