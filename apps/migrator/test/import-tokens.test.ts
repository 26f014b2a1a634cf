import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLegacyFixture } from '../../../tools/legacy-fixture/fixture.ts';
import { createTokenCipher, parseTokenKeys } from '../src/import/token-cipher.ts';
import { runCli } from './run-cli.ts';

const IMPORT_CLI = fileURLToPath(new URL('../src/import-cli.ts', import.meta.url));
const MIGRATOR_CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const key = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;
const K1 = key('k1');
const K2 = key('k2');

const run = runCli;

let dir: string;
let db: TestDatabase;
let file: string;
/** discordId → the legacy tokens */
let legacy: Map<string, { access: string; refresh: string }>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sw-import-tokens-'));
  file = writeLegacyFixture({ path: join(dir, 'tokens.sqlite'), rows: 60, seed: 11 }).path;
  const source = new DatabaseSync(file, { readOnly: true });
  legacy = new Map(
    (
      source.prepare('select discordId, accessToken, refreshToken from "User"').all() as {
        discordId: string;
        accessToken: string;
        refreshToken: string;
      }[]
    ).map((r) => [r.discordId, { access: r.accessToken, refresh: r.refreshToken }]),
  );
  source.close();
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function storedTokens() {
  return db.sql<{ discord_id: string; access_token: string | null; refresh_token: string | null }[]>`
    select discord_id, access_token, refresh_token from users order by discord_id`;
}

describe('legacy OAuth tokens', () => {
  it('refuses a malformed TOKEN_ENCRYPTION_KEYS by name, before touching anything', async () => {
    const res = await run(IMPORT_CLI, ['--from', file], {
      DATABASE_URL: db.url,
      TOKEN_ENCRYPTION_KEYS: 'k1:short',
    });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('TOKEN_ENCRYPTION_KEYS entry 1 must be "<id>:<32 random bytes in base64>"');
    expect(await storedTokens()).toEqual([]);
  });

  it('are stored only encrypted (AES-256-GCM, key id first), decrypt to the legacy values, and verify', async () => {
    expect(legacy.size).toBeGreaterThan(0);
    const res = await run(IMPORT_CLI, ['--from', file, '--json'], {
      DATABASE_URL: db.url,
      TOKEN_ENCRYPTION_KEYS: K1,
    });
    expect(res.code, res.stderr).toBe(0);
    const report = JSON.parse(res.stdout.trim().split('\n').pop()!);
    expect(report.verified).toBe(true);
    expect(report.warnings.join('\n')).not.toContain('TOKEN_ENCRYPTION_KEYS');
    const cipher = createTokenCipher(parseTokenKeys(K1))!;
    const rows = await storedTokens();
    expect(rows.length).toBe(legacy.size);
    for (const row of rows) {
      expect(row.access_token).toMatch(/^enc:v1:k1:/);
      expect(cipher.decrypt(row.access_token!)).toBe(legacy.get(row.discord_id)!.access);
      expect(cipher.decrypt(row.refresh_token!)).toBe(legacy.get(row.discord_id)!.refresh);
    }
    const everything = (await db.sql<{ t: string }[]>`select string_agg(u::text, ' ') as t from users u`)[0]!
      .t;
    for (const { access, refresh } of legacy.values()) {
      if (access.length > 3) expect(everything).not.toContain(access);
      if (refresh.length > 3) expect(everything).not.toContain(refresh);
    }
    // PostgreSQL refuses a token in clear
    await expect(
      db.sql`update users set access_token = 'plain-token' where discord_id = ${rows[0]!.discord_id}`,
    ).rejects.toThrow(/users_oauth_tokens_encrypted/);
  });

  it('never show in a verification report or its samples, over the API as in the CLI', async () => {
    const [victim] = await db.sql<{ id: string }[]>`select id from users order by discord_id limit 1`;
    await db.sql`update users set username = 'tampered' where id = ${victim!.id}`;
    const res = await run(IMPORT_CLI, ['--from', file, '--json'], {
      DATABASE_URL: db.url,
      TOKEN_ENCRYPTION_KEYS: K1,
    });
    expect(res.code).toBe(4);
    const report = JSON.parse(res.stdout.trim().split('\n').pop()!);
    const users = report.tables.find((t: { table: string }) => t.table === 'User');
    const [sample] = users.verification.samples;
    expect(sample.actual).toContain('tampered');
    expect(sample.expected).toContain('[redacted]');
    expect(sample.actual).toContain('[redacted]');
    const [stored] = await db.sql<
      { report: string }[]
    >`select report::text from import_runs order by created_at desc limit 1`;
    for (const text of [res.stdout, stored?.report ?? '']) {
      expect(text, text).not.toContain('enc:v1:');
      for (const { access } of legacy.values()) if (access.length > 3) expect(text).not.toContain(access);
    }
  });

  it('rotate to a new key with `migrator tokens`; rows stay readable, and unknown keys are named', async () => {
    const missing = await run(MIGRATOR_CLI, ['tokens'], { DATABASE_URL: db.url, TOKEN_ENCRYPTION_KEYS: '' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('TOKEN_ENCRYPTION_KEYS');
    const unknown = await run(MIGRATOR_CLI, ['tokens'], { DATABASE_URL: db.url, TOKEN_ENCRYPTION_KEYS: K2 });
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toContain('rows under key(s) k1 were left as they are');

    const rotated = await run(MIGRATOR_CLI, ['tokens'], {
      DATABASE_URL: db.url,
      TOKEN_ENCRYPTION_KEYS: `${K2},${K1}`,
    });
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toContain(`${legacy.size} user(s) re-encrypted under key "k2"`);
    expect(rotated.stdout).toContain('constraint validated');
    const cipher = createTokenCipher(parseTokenKeys(K2))!;
    for (const row of await storedTokens()) {
      expect(row.access_token).toMatch(/^enc:v1:k2:/);
      expect(cipher.decrypt(row.refresh_token!)).toBe(legacy.get(row.discord_id)!.refresh);
    }
  });

  it('encrypts tokens that were stored in clear before encryption existed', async () => {
    const [user] = await db.sql<
      { id: string; discord_id: string }[]
    >`select id, discord_id from users limit 1`;
    // as a row imported before migration 0115 would be: the check does not hold for it
    await db.sql`alter table users drop constraint users_oauth_tokens_encrypted`;
    await db.sql`update users set access_token = 'in-clear-access', refresh_token = 'in-clear-refresh' where id = ${user!.id}`;
    await db.sql`alter table users add constraint users_oauth_tokens_encrypted check (
      (access_token is null or access_token like 'enc:v1:%') and (refresh_token is null or refresh_token like 'enc:v1:%')) not valid`;
    const res = await run(MIGRATOR_CLI, ['tokens'], { DATABASE_URL: db.url, TOKEN_ENCRYPTION_KEYS: K2 });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain('1 user(s) re-encrypted under key "k2" (1 were in clear)');
    const [row] = await db.sql<
      { access_token: string }[]
    >`select access_token from users where id = ${user!.id}`;
    expect(createTokenCipher(parseTokenKeys(K2))!.decrypt(row!.access_token)).toBe('in-clear-access');
    const [c] = await db.sql<{ valid: boolean }[]>`
      select convalidated as valid from pg_constraint where conname = 'users_oauth_tokens_encrypted'`;
    expect(c!.valid).toBe(true);
  });
});
