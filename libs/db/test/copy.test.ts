import { randomUUID } from 'node:crypto';
import {
  appendRows,
  type CopyValue,
  copyRows,
  encodeCopyField,
  encodeCopyRows,
  ensurePartitions,
  stageRows,
  withTransaction,
} from '@spywatcher/db';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`
    create table copy_roundtrip (
      n integer primary key, t text, arr text[], j jsonb, b boolean, ts timestamptz, big bigint
    )
  `;
});
afterAll(async () => {
  await db?.drop();
});

const AWKWARD_TEXT = [
  'tab\there',
  'line1\nline2\r\nline3\r',
  'back\\slash and \\N and \\t literally',
  '',
  '\\.',
  'NULL',
  '"double" and \'single\' quotes',
  '{braces,and,commas}',
  'émoji 🎉 and ünïcödé',
  ' leading and trailing ',
];

const AWKWARD_ARRAYS: (string | null)[][] = [
  [],
  ['a,b', 'c'],
  ['quote"d', 'back\\slash'],
  [null, 'NULL', ''],
  ['{brace}', 'tab\there', 'new\nline'],
  [' spaced ', 'emoji 🎉'],
];

const AWKWARD_JSON: object[] = [
  {},
  { tab: 'a\tb', nl: 'a\nb', bs: 'back\\slash', quote: '"', nested: { arr: [1, null, 'x'] } },
  { unicode: 'café 🎉', escaped: '\\N', empty: '' },
  [1, 2, { three: 3 }],
];

describe('COPY text encoding', () => {
  it('round-trips awkward text, NULL, arrays, jsonb and scalars exactly', async () => {
    const rows: CopyValue[][] = [];
    let n = 0;
    for (const t of AWKWARD_TEXT) rows.push([n++, t, null, null, null, null, null]);
    for (const arr of AWKWARD_ARRAYS) rows.push([n++, null, arr, null, null, null, null]);
    for (const j of AWKWARD_JSON) rows.push([n++, null, null, j, null, null, null]);
    rows.push([n++, null, null, null, true, new Date('2016-02-29T23:59:59.123Z'), 9_007_199_254_740_993n]);
    rows.push([n++, null, null, null, false, null, -1]);
    rows.push([n++, undefined, undefined, undefined, undefined, undefined, undefined]);
    // A jsonb array of scalars would read as a PostgreSQL array: it is passed as JSON text.
    rows.push([n++, null, null, JSON.stringify(['a', 'b,c', null]), null, null, null]);

    await copyRows(db.sql, 'copy_roundtrip', ['n', 't', 'arr', 'j', 'b', 'ts', 'big'], rows, 3);

    // Arrays are read back as JSON: postgres.js 3.4 parses a NULL element of a text[] as the
    // string 'NULL', which would hide whether COPY stored a real NULL.
    const stored = await db.sql<
      {
        n: number;
        t: string | null;
        arr: (string | null)[] | null;
        j: unknown;
        b: boolean | null;
        ts: Date | null;
        big: string | null;
      }[]
    >`select n, t, array_to_json(arr) as arr, j, b, ts, big::text as big from copy_roundtrip order by n`;
    expect(stored).toHaveLength(rows.length);
    let i = 0;
    for (const t of AWKWARD_TEXT) expect(stored[i++]!.t).toBe(t);
    for (const arr of AWKWARD_ARRAYS) expect(stored[i++]!.arr).toEqual(arr);
    for (const j of AWKWARD_JSON) expect(stored[i++]!.j).toEqual(j);
    expect(stored[i]).toMatchObject({ b: true, big: '9007199254740993' });
    expect(stored[i++]!.ts!.toISOString()).toBe('2016-02-29T23:59:59.123Z');
    expect(stored[i++]).toMatchObject({ b: false, ts: null, big: '-1' });
    expect(stored[i++]).toMatchObject({ t: null, arr: null, j: null, b: null, ts: null, big: null });
    expect(stored[i++]!.j).toEqual(['a', 'b,c', null]);
  });

  it('COPYs text its caller encoded, as a string or as UTF-8 bytes, like the rows it encodes', async () => {
    const rows: CopyValue[][] = [
      [1001, 'tab\there 🎉', ['a,b', null], { k: 'v\n' }, true, new Date('2020-01-02T03:04:05.006Z'), 7],
      [1002, null, null, null, null, null, null],
    ];
    const text = encodeCopyRows(rows);
    const columns = ['n', 't', 'arr', 'j', 'b', 'ts', 'big'];
    await copyRows(db.sql, 'copy_roundtrip', columns, text);
    await copyRows(db.sql, 'copy_roundtrip', columns, Buffer.from(text.replaceAll('100', '200'), 'utf8'));
    const stored = await db.sql<{ n: number; t: string | null; j: unknown }[]>`
      select n, t, j from copy_roundtrip where n between 1001 and 2002 order by n`;
    expect(stored).toEqual([
      { n: 1001, t: 'tab\there 🎉', j: { k: 'v\n' } },
      { n: 1002, t: null, j: null },
      { n: 2001, t: 'tab\there 🎉', j: { k: 'v\n' } },
      { n: 2002, t: null, j: null },
    ]);
  });

  it('keeps an empty string distinct from NULL', () => {
    expect(encodeCopyField('')).toBe('');
    expect(encodeCopyField(null)).toBe('\\N');
    expect(encodeCopyField('\\N')).toBe('\\\\N');
  });
});

describe('stageRows', () => {
  it('stages typed columns for an insert ... select, emptied for each batch of the transaction', async () => {
    const shape = {
      columns: [
        { name: 'n', type: 'integer' },
        { name: 'tags', type: 'text[]' },
        { name: 'at', type: 'timestamptz' },
      ],
    };
    const seen = await withTransaction(db.sql, async (tx) => {
      await stageRows(tx, '_stage_test', shape, ['n', 'tags', 'at'], [[1, ['x', 'y'], new Date(0)]]);
      await stageRows(tx, '_stage_test', shape, ['n', 'tags', 'at'], '2\t{z}\t2001-01-01T00:00:00Z\n');
      return tx<{ n: number; tags: string[]; at: Date }[]>`select n, tags, at from _stage_test`;
    });
    expect(seen).toEqual([{ n: 2, tags: ['z'], at: new Date('2001-01-01T00:00:00Z') }]);
  });

  it('refuses a value its column type cannot hold', async () => {
    await expect(
      withTransaction(db.sql, (tx) =>
        stageRows(tx, '_stage_bad', { columns: [{ name: 'n', type: 'integer' }] }, ['n'], [['not a number']]),
      ),
    ).rejects.toMatchObject({ code: '22P02' });
  });
});

describe('appendRows', () => {
  const columns = [
    'id',
    'occurred_at',
    'user_id',
    'username',
    'channel_id',
    'channel_name',
    'guild_id',
    'content',
    'metadata',
  ];
  const at = new Date('2021-05-04T10:00:00Z');
  const row = (id: string, content: string): CopyValue[] => [
    id,
    at,
    '80351110224678912',
    'nelly',
    '41771983423143937',
    'general',
    '41771983423143936',
    content,
    { source: 'test', tab: '\t' },
  ];

  it('inserts with ON CONFLICT DO NOTHING and returns only the ids that were new', async () => {
    await ensurePartitions(db.sql, 'message', [at]);
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];

    const first = await withTransaction(db.sql, (tx) =>
      appendRows(tx, {
        table: 'message_events',
        columns,
        rows: [row(a, 'hello\tworld'), row(b, '')],
        returning: 'id',
      }),
    );
    expect(first.sort()).toEqual([a, b].sort());

    // b is a duplicate of a stored row and c appears twice in the batch: each is stored once.
    const second = await withTransaction(db.sql, (tx) =>
      appendRows(tx, {
        table: 'message_events',
        columns,
        rows: [row(b, 'changed'), row(c, 'new'), row(c, 'new again')],
        returning: 'id',
      }),
    );
    expect(second).toEqual([c]);

    const stored = await db.sql<{ id: string; content: string; metadata: unknown }[]>`
      select id::text as id, content, metadata from message_events where id = any(${[a, b, c]}::uuid[]) order by content
    `;
    expect(stored.map((r) => r.id).sort()).toEqual([a, b, c].sort());
    expect(stored.find((r) => r.id === b)!.content).toBe('');
    expect(stored.find((r) => r.id === a)!.content).toBe('hello\tworld');
    expect(stored[0]!.metadata).toEqual({ source: 'test', tab: '\t' });
  });

  it('can append twice in one transaction (the staging table is reused)', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const ids = await withTransaction(db.sql, async (tx) => [
      ...(await appendRows(tx, { table: 'message_events', columns, rows: [row(a, 'one')], returning: 'id' })),
      ...(await appendRows(tx, { table: 'message_events', columns, rows: [row(b, 'two')], returning: 'id' })),
    ]);
    expect(ids).toEqual([a, b]);
  });

  it('returns nothing for an empty batch', async () => {
    await expect(
      withTransaction(db.sql, (tx) =>
        appendRows(tx, { table: 'message_events', columns, rows: [], returning: 'id' }),
      ),
    ).resolves.toEqual([]);
  });
});
