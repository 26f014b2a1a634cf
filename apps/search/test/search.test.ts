import { connect, type NatsConnection } from '@nats-io/transport-node';
import { copyRows, ensurePartitions } from '@spywatcher/db';
import { createAuth, type ServiceInstance } from '@spywatcher/service';
import { createTestDatabase, type TestDatabase, testNatsUrl } from '@spywatcher/testing';
import { mulberry32 } from '@spywatcher/testing/random';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { type ParsedQuery, parseQuery, type Ref, searchMessages } from '../src/search/index.ts';
import {
  CHANNELS,
  type CorpusMessage,
  generateCorpus,
  loadCorpus,
  matchesText,
  newestFirst,
  USERS,
  uuidFrom,
} from './search-corpus.ts';

// Every query is answered twice: by the API, page by page, and by brute force over the
// generated corpus in this file. They must agree on the rows, their order and the count.

const READER = 'reader-token-0123456789';
const WRITER = 'writer-token-0123456789';

let db: TestDatabase;
let nats: NatsConnection;
let app: ServiceInstance;
let corpus: CorpusMessage[];
const deleted = new Set<string>();

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl() });
  corpus = generateCorpus(3000);
  await loadCorpus(db.sql, corpus);
  // about one message in twenty is deleted later
  const rand = mulberry32(7);
  const gone = corpus.filter(() => rand() < 0.05);
  for (const m of gone) deleted.add(m.messageId);
  const deletedAt = gone.map((m) => new Date(m.occurredAt.getTime() + 60_000));
  await ensurePartitions(db.sql, 'deleted_message', deletedAt);
  await copyRows(
    db.sql,
    'deleted_message_events',
    ['id', 'occurred_at', 'message_id', 'user_id', 'username', 'channel_id', 'channel_name', 'guild_id'],
    gone.map((m, i) => [
      uuidFrom(rand),
      deletedAt[i]!,
      m.messageId,
      m.userId,
      m.username,
      m.channelId,
      m.channelName,
      m.guildId,
    ]),
  );
  await db.sql`analyze`;
  app = await buildApp({
    sql: db.sql,
    nats,
    metrics: new Registry(),
    auth: createAuth([
      { name: 'reader', token: READER, scopes: ['search:read'] },
      { name: 'writer', token: WRITER, scopes: ['events:write'] },
    ]),
    logger: false,
  });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await nats?.close();
  await db?.drop();
});

function idsOf(refs: Ref[], kind: 'user' | 'channel'): string[] {
  const table = kind === 'user' ? USERS : CHANNELS;
  return refs.flatMap((r) =>
    r.id !== undefined ? [r.id] : table.filter((x) => x.name === r.name).map((x) => x.id),
  );
}

function bruteForce(q: ParsedQuery): CorpusMessage[] {
  const fromIn = idsOf(q.from.include, 'user');
  const fromEx = idsOf(q.from.exclude, 'user');
  const inIn = idsOf(q.in.include, 'channel');
  const inEx = idsOf(q.in.exclude, 'channel');
  return corpus
    .filter((m) => {
      if (q.text && !matchesText(q.text, m.tokens)) return false;
      if (q.from.include.length && !fromIn.includes(m.userId)) return false;
      if (fromEx.includes(m.userId)) return false;
      if (q.in.include.length && !inIn.includes(m.channelId)) return false;
      if (inEx.includes(m.channelId)) return false;
      if (q.guild.include.length && !q.guild.include.includes(m.guildId)) return false;
      if (q.guild.exclude.includes(m.guildId)) return false;
      for (const r of q.mentions.include) {
        if (!idsOf([r], 'user').some((id) => m.mentions.includes(id))) return false;
      }
      if (idsOf(q.mentions.exclude, 'user').some((id) => m.mentions.includes(id))) return false;
      if (q.has.include.some((h) => !m.has[h])) return false;
      if (q.has.exclude.some((h) => m.has[h])) return false;
      if (q.since && m.occurredAt < q.since) return false;
      if (q.until && m.occurredAt >= q.until) return false;
      if (q.deleted !== null && deleted.has(m.messageId) !== q.deleted) return false;
      return true;
    })
    .sort(newestFirst);
}

async function allPages(q: string, sort: 'newest' | 'relevance', limit: number) {
  const ids: string[] = [];
  let cursor: string | undefined;
  let total: unknown = null;
  for (let page = 0; page < 200; page++) {
    const res = await searchMessages(db.sql, parseQuery(q), { sort, limit, cursor }, q);
    if (page === 0) total = res.total;
    expect(res.results.length).toBeLessThanOrEqual(limit);
    ids.push(...res.results.map((r) => r.id));
    if (!res.nextCursor) break;
    expect(res.results.length).toBe(limit);
    cursor = res.nextCursor;
  }
  return { ids, total };
}

const QUERIES = [
  'deploy',
  'zebra',
  'nothingmatchesthis',
  'deploy server',
  '"deploy server"',
  '"the game tonight"',
  'zebra OR quartz',
  'zebra OR quartz OR nebula walrus',
  'deploy -server',
  '-the -and',
  '-"deploy server" build',
  '(zebra OR quartz) -deploy',
  'dep*',
  '"deploy ser*"',
  '"the gam* tonight"',
  'build -"the ga*"',
  '"con* log"',
  'ne*',
  'cafe',
  'CAFÉ naive',
  'resume OR creme',
  'youtube',
  'youtube.com',
  'github',
  'node',
  'node.js',
  'NODE_JS',
  'console',
  'console.log',
  '"console.log x"',
  'readme',
  'README.md',
  'snake',
  'snake_case',
  'has:code node',
  'js -node.js',
  'pepega',
  'w12x',
  'from:alice deploy',
  'from:100000000000000002',
  'from:<@100000000000000003> game',
  'from:alice from:bob zebra',
  '-from:alice nebula',
  'in:dev',
  'in:general has:link',
  'in:<#200000000000000003> -in:dev the',
  'guild:300000000000000002 the',
  '-guild:300000000000000002 walrus',
  'mentions:bob',
  'mentions:<@100000000000000001> mentions:carol',
  '-mentions:alice has:mention',
  'has:emoji',
  'has:code build',
  'has:attachment',
  '-has:link tonight',
  'has:link has:emoji',
  'before:2026-02-01 zebra',
  'after:2026-03 game',
  'during:2026-02',
  'during:2026-02-10',
  'after:2026-02-01T05:00:00Z before:2026-02-03',
  'is:deleted',
  '-is:deleted zebra',
  'is:deleted from:dave the',
];

describe('search correctness against brute force', () => {
  it.each(QUERIES)('newest first: %s', async (q) => {
    const expected = bruteForce(parseQuery(q));
    const { ids, total } = await allPages(q, 'newest', 100);
    expect(ids).toEqual(expected.map((m) => m.id));
    const n = expected.length;
    expect(total).toEqual(
      n > 1000
        ? { count: 1000, capped: true, display: '1000+' }
        : { count: n, capped: false, display: String(n) },
    );
  });

  it.each(['zebra OR quartz', 'the', 'the OR and OR deploy', 'deploy -server', 'cafe from:alice'])(
    'relevance covers the same rows once each: %s',
    async (q) => {
      const expected = bruteForce(parseQuery(q));
      const { ids } = await allPages(q, 'relevance', 97);
      expect(new Set(ids).size).toBe(ids.length);
      expect([...ids].sort()).toEqual(expected.map((m) => m.id).sort());
    },
  );

  it('relevance pages are ordered by score within a window', async () => {
    const res = await searchMessages(db.sql, parseQuery('deploy OR server'), {
      sort: 'relevance',
      limit: 50,
    });
    const scores = res.results.map((r) => r.score!);
    expect(scores.every((s) => typeof s === 'number')).toBe(true);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
  });

  it('marks matches in snippets, escaped, and flags messages deleted later', async () => {
    const res = await searchMessages(db.sql, parseQuery('cafe'), { limit: 100 });
    expect(res.results.length).toBeGreaterThan(0);
    for (const hit of res.results) {
      expect(hit.snippet).toMatch(/<mark>café<\/mark>/i);
      expect(hit.snippet).not.toMatch(/<(?!\/?mark>)/);
      expect(hit.deleted).toBe(deleted.has(hit.messageId!));
    }
  });

  it('suggests close words that exist when a word matches nothing', async () => {
    const res = await searchMessages(db.sql, parseQuery('deploy zebar'), {}, 'deploy zebar');
    expect(res.total?.count).toBe(0);
    expect(res.didYouMean?.words).toEqual([
      { word: 'zebar', position: 7, suggestions: expect.arrayContaining(['zebra']) },
    ]);
    expect(res.didYouMean?.query).toBe('deploy zebra');
    const accented = await searchMessages(db.sql, parseQuery('cafee'), {}, 'cafee');
    expect(accented.didYouMean?.words[0]?.suggestions).toContain('cafe');
    const found = await searchMessages(db.sql, parseQuery('zebra'), {}, 'zebra');
    expect(found.didYouMean).toBeNull();
  });
});

describe('HTTP', () => {
  const get = (url: string, token: string | null = READER) =>
    app.inject({ method: 'GET', url, headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('needs a token with search:read', async () => {
    expect((await get('/v1/search/messages?q=deploy', null)).statusCode).toBe(401);
    expect((await get('/v1/search/messages?q=deploy', WRITER)).statusCode).toBe(403);
    expect((await get('/v1/messages/500000000000000001/context', WRITER)).statusCode).toBe(403);
    expect((await get(`/v1/users/${USERS[0]!.id}/timeline`, null)).statusCode).toBe(401);
  });

  it('searches, pages and highlights', async () => {
    const res = await get('/v1/search/messages?q=zebra%20OR%20quartz&limit=5');
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body.results).toHaveLength(5);
    expect(body.results[0].snippet).toMatch(/<mark>(zebra|quartz)<\/mark>/);
    const next = await get(`/v1/search/messages?q=zebra%20OR%20quartz&limit=5&cursor=${body.nextCursor}`);
    expect(next.statusCode).toBe(200);
    expect(next.json().results[0].id).not.toBe(body.results[0].id);
  });

  it('search as you type makes the last word a prefix', async () => {
    const typed = await get('/v1/search/messages?q=nebu&asYouType=true&limit=100');
    const exact = await get('/v1/search/messages?q=nebula&limit=100');
    expect(typed.json().results.map((r: { id: string }) => r.id)).toEqual(
      exact.json().results.map((r: { id: string }) => r.id),
    );
    expect((await get('/v1/search/messages?q=nebu&limit=100')).json().total.count).toBe(0);
  });

  it.each([
    ['deploy -nebu', 'deploy -nebu*'],
    ['"the gam', '"the gam*"'],
    ['-"the gam', '-"the gam*"'],
    ['(zebra OR quar', '(zebra OR quar*)'],
    ['quar from:alice', 'quar from:alice'],
    ['(zebra OR quar)', '(zebra OR quar)'],
  ])('search as you type: %j is searched as %j', async (typed, meant) => {
    const res = await get(`/v1/search/messages?q=${encodeURIComponent(typed)}&asYouType=true&limit=100`);
    expect(res.statusCode, res.body).toBe(200);
    const expected = bruteForce(parseQuery(meant)).slice(0, 100);
    expect(res.json().results.map((r: { id: string }) => r.id)).toEqual(expected.map((m) => m.id));
  });

  it('answers 400 with the position and what was expected', async () => {
    const res = await get(`/v1/search/messages?q=${encodeURIComponent('deploy has:pictures')}`);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({
      code: 'INVALID_QUERY',
      details: { position: 11, expected: expect.stringContaining('link') },
    });
    const star = await get(`/v1/search/messages?q=${encodeURIComponent('deploy "the a*b"')}`);
    expect(star.statusCode).toBe(400);
    expect(star.json().error).toMatchObject({
      code: 'INVALID_QUERY',
      message: expect.stringContaining('a * only at the end of a word in a phrase'),
      details: {
        position: 13,
        expected: 'a * only at the end of a word in a phrase (it makes that word a prefix)',
      },
    });
    const empty = await get(`/v1/search/messages?q=${encodeURIComponent('!!! ???')}`);
    expect(empty.statusCode).toBe(400);
    expect(empty.json().error.details.position).toBe(0);
  });

  it('returns a message with its channel neighbours', async () => {
    const inChannel = corpus
      .filter((m) => m.channelId === CHANNELS[1]!.id)
      .sort((a, b) => -newestFirst(a, b));
    const target = inChannel[10]!;
    for (const id of [target.id, target.messageId]) {
      const res = await get(`/v1/messages/${id}/context?before=3&after=4`);
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      expect(body.message.id).toBe(target.id);
      expect(body.message.deleted).toBe(deleted.has(target.messageId));
      expect(body.before.map((m: { id: string }) => m.id)).toEqual(inChannel.slice(7, 10).map((m) => m.id));
      expect(body.after.map((m: { id: string }) => m.id)).toEqual(inChannel.slice(11, 15).map((m) => m.id));
    }
    expect((await get('/v1/messages/00000000-0000-4000-8000-000000000000/context')).statusCode).toBe(404);
    expect((await get('/v1/messages/not-an-id/context')).statusCode).toBe(400);
  });

  it("serves a user's timeline", async () => {
    const res = await get(`/v1/users/${USERS[0]!.id}/timeline?types=message&limit=3`);
    expect(res.statusCode, res.body).toBe(200);
    const mine = corpus.filter((m) => m.userId === USERS[0]!.id).sort(newestFirst);
    expect(res.json().entries.map((e: { id: string }) => e.id)).toEqual(mine.slice(0, 3).map((m) => m.id));
    expect(res.json().nextCursor).toEqual(expect.any(String));
  });

  it('lists the routes with examples in OpenAPI', async () => {
    const spec = (await get('/openapi.json', null)).json();
    for (const path of ['/v1/search/messages', '/v1/messages/{id}/context', '/v1/users/{userId}/timeline']) {
      expect(spec.paths[path]?.get?.security).toEqual([{ bearerAuth: ['search:read'] }]);
    }
    const q = spec.paths['/v1/search/messages'].get.parameters.find((p: { name: string }) => p.name === 'q');
    expect(JSON.stringify(q)).toContain('from:alice');
  });
});

describe('injection attempts in every parameter', () => {
  const get = (url: string) =>
    app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${READER}` } });
  const evil = [
    "'; drop table message_events; --",
    "x' or '1'='1",
    '"); delete from message_events; --',
    "zebra' || pg_sleep(5) || '",
    '\\x00 \u0000 $1 $$ ; --',
    "a & b | !c <-> 'd':*",
  ];

  it('treats hostile text as words or rejects it, never as SQL', async () => {
    const payloads = [
      ...evil.map((e) => `q=${encodeURIComponent(e)}`),
      ...evil.map((e) => `q=${encodeURIComponent(`from:"${e}" deploy`)}`),
      ...evil.map((e) => `q=${encodeURIComponent(`in:"${e}"`)}`),
      ...evil.map((e) => `q=${encodeURIComponent(`mentions:"${e}"`)}`),
      ...evil.map((e) => `q=${encodeURIComponent(`guild:${e}`)}`),
      ...evil.map((e) => `q=${encodeURIComponent(`before:${e}`)}`),
      ...evil.map((e) => `q=deploy&cursor=${encodeURIComponent(e)}`),
      ...evil.map(
        (e) =>
          `q=deploy&cursor=${Buffer.from(JSON.stringify({ k: 'new', t: e, i: e })).toString('base64url')}`,
      ),
      ...evil.map((e) => `q=deploy&sort=${encodeURIComponent(e)}`),
      ...evil.map((e) => `q=deploy&limit=${encodeURIComponent(e)}`),
    ];
    for (const p of payloads) {
      const res = await get(`/v1/search/messages?${p}`);
      expect([200, 400], `${p}: ${res.body}`).toContain(res.statusCode);
    }
    for (const e of evil) {
      for (const url of [
        `/v1/messages/${encodeURIComponent(e)}/context`,
        `/v1/messages/500000000000000001/context?before=${encodeURIComponent(e)}`,
        `/v1/users/${encodeURIComponent(e)}/timeline`,
        `/v1/users/${USERS[0]!.id}/timeline?types=${encodeURIComponent(e)}`,
        `/v1/users/${USERS[0]!.id}/timeline?guild=${encodeURIComponent(e)}`,
        `/v1/users/${USERS[0]!.id}/timeline?cursor=${encodeURIComponent(e)}`,
      ]) {
        const res = await get(url);
        expect(res.statusCode, `${url}: ${res.body}`).toBe(400);
      }
    }
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from message_events`;
    expect(row!.n).toBe(corpus.length);
  });

  it('finds hostile text as plain words', async () => {
    const res = await get(`/v1/search/messages?q=${encodeURIComponent("x' or '1'='1")}`);
    expect(res.statusCode).toBe(200);
    expect(res.json().total.count).toBe(0);
  });
});
