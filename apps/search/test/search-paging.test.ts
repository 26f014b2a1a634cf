import { appendRows, ensurePartitions, PartitionCache, withTransaction } from '@spywatcher/db';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { mulberry32 } from '@spywatcher/testing/random';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseQuery, searchMessages } from '../src/search/index.ts';
import {
  type CorpusMessage,
  generateCorpus,
  loadCorpus,
  MESSAGE_COLUMNS,
  matchesText,
  messageRow,
  newestFirst,
  uuidFrom,
} from './search-corpus.ts';

// Keyset paging while a writer keeps committing messages: every message that matched before
// paging started comes back exactly once, in order, and nothing repeats.

let db: TestDatabase;
let corpus: CorpusMessage[];

beforeAll(async () => {
  db = await createTestDatabase();
  corpus = generateCorpus(2500, 11);
  await loadCorpus(db.sql, corpus);
  await db.sql`analyze`;
});

afterAll(async () => {
  await db?.drop();
});

/** Commits small batches until stopped: new messages (newer than all) and late ones (older). */
function startWriter(seed: number, late: boolean) {
  const rand = mulberry32(seed);
  const cache = new PartitionCache();
  const newest = Math.max(...corpus.map((m) => m.occurredAt.getTime()));
  const oldest = Math.min(...corpus.map((m) => m.occurredAt.getTime()));
  let running = true;
  let inserted = 0;
  const done = (async () => {
    for (let batch = 0; running && batch < 400; batch++) {
      const rows = generateCorpus(5, seed * 1000 + batch).map((m, i) => {
        const t =
          late && i % 2 === 1
            ? oldest + Math.floor(rand() * (newest - oldest))
            : newest + 1000 + batch * 10 + i;
        return messageRow({
          ...m,
          id: uuidFrom(rand),
          occurredAt: new Date(t),
          messageId: `9${seed}${batch}${i}`,
        });
      });
      await ensurePartitions(
        db.sql,
        'message',
        rows.map((r) => r[1]),
        cache,
      );
      await withTransaction(db.sql, (tx) =>
        appendRows(tx, { table: 'message_events', columns: MESSAGE_COLUMNS, rows }),
      );
      inserted += rows.length;
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return inserted;
    },
  };
}

async function pageThrough(q: string, sort: 'newest' | 'relevance', limit: number) {
  const ids: string[] = [];
  const times: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 500; page++) {
    const res = await searchMessages(db.sql, parseQuery(q), { sort, limit, cursor, count: false });
    ids.push(...res.results.map((r) => r.id));
    times.push(...res.results.map((r) => r.occurredAt));
    if (!res.nextCursor) break;
    cursor = res.nextCursor;
  }
  return { ids, times };
}

describe('cursor paging under concurrent inserts', () => {
  it('newest first: no repeats, no gaps, even with late (older) messages arriving', async () => {
    const q = 'deploy OR game';
    const before = corpus.filter((m) => matchesText(parseQuery(q).text!, m.tokens)).sort(newestFirst);
    const writer = startWriter(1, true);
    const { ids, times } = await pageThrough(q, 'newest', 13);
    const inserted = await writer.stop();
    expect(inserted).toBeGreaterThan(0);
    expect(new Set(ids).size).toBe(ids.length);
    const seen = new Set(ids);
    expect(before.filter((m) => !seen.has(m.id))).toEqual([]);
    // newest first throughout
    expect(times).toEqual([...times].sort().reverse());
  });

  it('relevance: no repeats, no gaps while new messages arrive', async () => {
    const q = 'the OR deploy OR game';
    const expected = corpus.filter((m) => matchesText(parseQuery(q).text!, m.tokens));
    expect(expected.length).toBeGreaterThan(1000); // spans several windows
    // the anchor is fixed by the first page, taken before the writer starts
    const first = await searchMessages(db.sql, parseQuery(q), { sort: 'relevance', limit: 50, count: false });
    const writer = startWriter(2, true);
    const ids = first.results.map((r) => r.id);
    let cursor = first.nextCursor;
    while (cursor) {
      const res = await searchMessages(db.sql, parseQuery(q), {
        sort: 'relevance',
        limit: 50,
        cursor,
        count: false,
      });
      ids.push(...res.results.map((r) => r.id));
      cursor = res.nextCursor;
    }
    await writer.stop();
    expect(new Set(ids).size).toBe(ids.length);
    const seen = new Set(ids);
    expect(expected.filter((m) => !seen.has(m.id)).map((m) => m.id)).toEqual([]);
  });

  it('rejects a cursor of another sort order', async () => {
    const res = await searchMessages(db.sql, parseQuery('deploy'), { limit: 5 });
    await expect(
      searchMessages(db.sql, parseQuery('deploy'), { sort: 'relevance', cursor: res.nextCursor! }),
    ).rejects.toThrow(/another sort order/);
  });
});
