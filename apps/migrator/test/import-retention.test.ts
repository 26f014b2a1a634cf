import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setRetention } from '@spywatcher/db';
import { EVENT_TYPES, eventTable } from '@spywatcher/events';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLegacyFixture } from '../../../tools/legacy-fixture/fixture.ts';
import { runImport } from '../src/import/importer.ts';
import { createTokenCipher, parseTokenKeys } from '../src/import/token-cipher.ts';

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const TABLES = EVENT_TYPES.map((t) => eventTable(t));

let dir: string;
let db: TestDatabase;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sw-import-retention-'));
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

function cli(args: string[]) {
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, DATABASE_URL: db.url } });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('close', (code) => resolve({ code, out }));
  });
}

async function eventRows(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of TABLES) {
    const [r] = await db.sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${t}`);
    out[t] = r!.n;
  }
  return out;
}

describe('retention and imported history', () => {
  // seven runs of the migrator CLI, each a Node start: minutes on a loaded machine
  it('keeps two-year-old imported history through partition upkeep, until drop_imported is set', {
    timeout: 240_000,
  }, async () => {
    const now = new Date();
    const start = new Date(Date.UTC(now.getUTCFullYear() - 2, now.getUTCMonth(), 1));
    const fx = writeLegacyFixture({ path: join(dir, 'old.sqlite'), rows: 700, months: 3, start, seed: 9 });
    // with a key, so that the legacy OAuth tokens are imported and the report has no warning
    const tokens = createTokenCipher(parseTokenKeys(`k1:${randomBytes(32).toString('base64')}`));
    const report = await runImport(db.sql, { from: fx.path, tokens });
    expect(report.exitCode).toBe(0);
    expect(report.warnings).toEqual([]);
    const imported = await eventRows();
    expect(Object.values(imported).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(700);

    // On the defaults retention is off: upkeep only creates partitions.
    const defaults = await cli(['partitions']);
    expect(defaults.code, defaults.out).toBe(0);
    expect(defaults.out).not.toMatch(/^(drop|keep) /m);
    expect(await eventRows()).toEqual(imported);

    // An operator sets a retention for every table, without drop_imported: still kept.
    for (const t of TABLES.filter((t) => t !== 'message_events')) await setRetention(db.sql, t, 30);
    expect((await cli(['retention', 'message_events', '30'])).code).toBe(0);
    const listed = await cli(['retention']);
    expect(listed.out).toMatch(/message_events\s+month\s+keep 30 days, imported history kept/);
    const dry = await cli(['partitions', '--dry-run']);
    expect(dry.out).toMatch(/^would keep message_events_p\d{8} .*imported legacy rows/m);
    const kept = await cli(['partitions']);
    expect(kept.code, kept.out).toBe(0);
    expect(kept.out).toMatch(/^keep message_events_p\d{8} /m);
    expect(kept.out).not.toMatch(/^drop /m);
    expect(await eventRows()).toEqual(imported);
    const verify = await runImport(db.sql, { from: fx.path, verifyOnly: true });
    expect(verify.verified).toBe(true);

    // Only the explicit setting lets retention drop it, and only for that table.
    expect((await cli(['retention', 'message_events', '30', '--drop-imported'])).code).toBe(0);
    const dropped = await cli(['partitions']);
    expect(dropped.out).toMatch(/^drop message_events_p\d{8} /m);
    expect(await eventRows()).toEqual({ ...imported, message_events: 0 });
    const [left] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from imported_partitions where parent = 'message_events'`;
    expect(left!.n).toBe(0);
  });
});
