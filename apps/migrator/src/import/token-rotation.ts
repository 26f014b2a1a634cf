import type { Sql } from '@spywatcher/db';
import type { TokenCipher } from './token-cipher.ts';

export interface RotationReport {
  /** Users whose tokens are now under the current key (re-encrypted or encrypted from clear). */
  reencrypted: number;
  /** Of those, users whose tokens were stored in clear (imported before encryption). */
  fromClear: number;
  /** Users whose tokens were already under the current key. */
  current: number;
  /** Key ids found that TOKEN_ENCRYPTION_KEYS does not hold (those rows are left as they are). */
  unknownKeys: string[];
  /** True when the check that no token is in clear now holds for every row. */
  validated: boolean;
}

interface TokenRow {
  id: string;
  access_token: string | null;
  refresh_token: string | null;
}

/** One token under the current key: decrypted with its own key first, or taken as it is when in clear. */
function rekey(cipher: TokenCipher, value: string | null, unknown: Set<string>): string | null {
  if (value === null) return null;
  const id = cipher.keyIdOf(value);
  if (id === cipher.currentKeyId) return value;
  if (id === null) return cipher.encrypt(value);
  try {
    return cipher.encrypt(cipher.decrypt(value));
  } catch {
    unknown.add(id);
    return value;
  }
}

/**
 * Key rotation: puts every user's OAuth tokens under the current key (the first of
 * TOKEN_ENCRYPTION_KEYS), decrypting with the key each value names, and encrypts tokens stored in
 * clear. Each batch commits on its own, so a stopped run is continued by running it again. When no
 * row is left in clear, the table's check constraint is validated, so PostgreSQL holds it for all.
 */
export async function rotateTokens(sql: Sql, cipher: TokenCipher, batchRows = 500): Promise<RotationReport> {
  const report: RotationReport = {
    reencrypted: 0,
    fromClear: 0,
    current: 0,
    unknownKeys: [],
    validated: false,
  };
  const unknown = new Set<string>();
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const rows = await sql<TokenRow[]>`
      select id::text, access_token, refresh_token from users where id > ${after}::uuid order by id limit ${batchRows}
    `;
    if (rows.length === 0) break;
    after = rows.at(-1)!.id;
    const changed: TokenRow[] = [];
    for (const row of rows) {
      const next = {
        id: row.id,
        access_token: rekey(cipher, row.access_token, unknown),
        refresh_token: rekey(cipher, row.refresh_token, unknown),
      };
      if (next.access_token === row.access_token && next.refresh_token === row.refresh_token) {
        if (row.access_token !== null || row.refresh_token !== null) report.current++;
        continue;
      }
      if (cipher.keyIdOf(row.access_token ?? '') === null && row.access_token !== null) report.fromClear++;
      changed.push(next);
    }
    if (changed.length > 0) {
      await sql`
        update users u set access_token = c.access_token, refresh_token = c.refresh_token
        from (select * from unnest(${changed.map((c) => c.id)}::uuid[], ${changed.map((c) => c.access_token)}::text[],
                                   ${changed.map((c) => c.refresh_token)}::text[]) as t(id, access_token, refresh_token)) c
        where u.id = c.id
      `;
      report.reencrypted += changed.length;
    }
  }
  report.unknownKeys = [...unknown].sort();
  const [clear] = await sql<{ n: number }[]>`
    select count(*)::int as n from users
    where (access_token is not null and access_token not like 'enc:v1:%')
       or (refresh_token is not null and refresh_token not like 'enc:v1:%')
  `;
  if (clear!.n === 0) {
    await sql`alter table users validate constraint users_oauth_tokens_encrypted`;
    report.validated = true;
  }
  return report;
}
