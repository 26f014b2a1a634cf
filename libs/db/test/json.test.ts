import { jsonb } from '@spywatcher/db';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`create table docs (id integer primary key, body jsonb)`;
});
afterAll(async () => {
  await db?.drop();
});

interface Report {
  rows: number;
  tables: string[];
  nested: { ok: boolean; at: string | null };
}

describe('jsonb', () => {
  it('stores an interface-typed record and an unknown value as jsonb, read back unchanged', async () => {
    const report: Report = { rows: 3, tables: ['a', 'b'], nested: { ok: true, at: null } };
    const unknownValue: unknown = [1, 'two', { three: 3 }];
    await db.sql`insert into docs values (1, ${jsonb(db.sql, report)}), (2, ${jsonb(db.sql, unknownValue)})`;
    const rows = await db.sql<{ id: number; body: unknown; kind: string }[]>`
      select id, body, jsonb_typeof(body) as kind from docs order by id
    `;
    expect(rows.map((r) => [r.id, r.body, r.kind])).toEqual([
      [1, report, 'object'],
      [2, unknownValue, 'array'],
    ]);
  });
});
