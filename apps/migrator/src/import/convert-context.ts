import type { LegacySource } from './source.ts';
import { type ConvertContext, type Row, TABLE_SPECS } from './tables.ts';
import type { TokenCipher } from './token-cipher.ts';
import { isProblem } from './values.ts';

/**
 * What converting the reference tables needs: the import's start time (for future dates), the
 * token cipher, and the legacy users that cannot be imported (the guilds pointing at them are
 * orphans).
 */
export function convertContext(
  source: LegacySource,
  now: number,
  tokens: TokenCipher | null,
): ConvertContext {
  const users = TABLE_SPECS.find((s) => s.legacy === 'User')!;
  const rejectedUsers = new Set<string>();
  const ctx: ConvertContext = {
    now,
    tokens,
    rejectedUsers,
    userExists: (() => {
      const stmt = source.db.prepare(`select 1 as ok from "User" where id = ?`);
      return (id: string) => stmt.get(id) !== undefined;
    })(),
  };
  if (users.kind === 'reference') {
    const stmt = source.db.prepare(`select * from "User"`);
    stmt.setReadBigInts(true);
    for (const row of stmt.iterate() as Iterable<Row>) {
      if (isProblem(users.convert(row, {}, ctx))) rejectedUsers.add(String(row.id));
    }
  }
  return ctx;
}
