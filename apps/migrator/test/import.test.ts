import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase, UNREACHABLE_DATABASE_URL } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSummary, writeLegacyFixture } from '../../../tools/legacy-fixture/fixture.ts';
import { ContentHash } from '../src/import/canonical.ts';
import { IsoTimes } from '../src/import/encode.ts';
import { legacyEventId, legacyIdOfEventId } from '../src/import/ids.ts';
import { runImport } from '../src/import/importer.ts';
import { ImportError } from '../src/import/source.ts';
import { runCli } from './run-cli.ts';

const CLI = fileURLToPath(new URL('../src/import-cli.ts', import.meta.url));
const TARGETS: Record<string, string> = {
  User: 'users',
  Guild: 'guilds',
  BlockedIP: 'blocked_ips',
  BannedUser: 'banned_users',
  PresenceEvent: 'presence_events',
  TypingEvent: 'typing_events',
  MessageEvent: 'message_events',
  JoinEvent: 'join_events',
  DeletedMessageEvent: 'deleted_message_events',
  ReactionTime: 'reaction_time_events',
  RoleChangeEvent: 'role_change_events',
};

let dir: string;
const dbs: TestDatabase[] = [];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sw-import-test-'));
});
afterAll(async () => {
  for (const db of dbs) await db.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function freshDb(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  dbs.push(db);
  return db;
}

function fixture(
  name: string,
  options: { rows: number; rejects?: boolean; oddities?: boolean; seed?: number },
): FixtureSummary {
  return writeLegacyFixture({ path: join(dir, name), ...options });
}

async function counts(db: TestDatabase): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [legacy, table] of Object.entries(TARGETS)) {
    const [r] = await db.sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${table}`);
    out[legacy] = r!.n;
  }
  return out;
}

const cli = (args: string[], env: Record<string, string> = {}) => runCli(CLI, args, env);

describe('legacy SQLite import', () => {
  let db: TestDatabase;
  let fx: FixtureSummary;

  beforeAll(async () => {
    db = await freshDb();
    fx = fixture('clean.sqlite', { rows: 400 });
  });

  it('imports every table, converts the awkward values and verifies', async () => {
    const report = await runImport(db.sql, { from: fx.path, batchRows: 50 });
    expect(report.exitCode).toBe(0);
    expect(report.verified).toBe(true);
    expect(report.rejected).toBe(0);
    expect(await counts(db)).toEqual(fx.tables);
    for (const t of report.tables) expect(t.verification?.ok).toBe(true);

    const messages = await db.sql<{ content: string; message_id: string | null }[]>`
      select content, message_id from message_events order by (metadata->>'legacy_id')::int limit 6`;
    expect(messages.map((m) => m.content)).toEqual([
      '',
      `${'x'.repeat(3998)}😀🙂`,
      'مرحبا بالعالم 👋🏽 שלום עולם',
      expect.stringContaining('<@123456789012345678>'),
      'He said "hi" and it\'s C:\\path\\to\\file \\n not a newline; a real one:\nand a\ttab',
      expect.stringContaining('||spoiler||'),
    ]);
    expect(messages.every((m) => m.message_id === null)).toBe(true);
    const [tsv] =
      await db.sql`select count(*)::int as n from message_events where tsv @@ to_tsquery('sw_chat', 'pepe')`;
    expect(tsv!.n).toBeGreaterThan(0);

    const presence = await db.sql<{ clients: string[]; guild_id: string | null }[]>`
      select clients, guild_id from presence_events order by (metadata->>'legacy_id')::int limit 6`;
    expect(presence.map((p) => p.clients)).toEqual([
      ['desktop', 'web'],
      [],
      ['mobile'],
      ['desktop'],
      ['web'],
      ['desktop', 'mobile', 'web'],
    ]);
    expect(presence.every((p) => p.guild_id === null)).toBe(true);
    const [roles] =
      await db.sql`select count(*)::int as n from role_change_events where removed_roles = '{}'`;
    expect(roles!.n).toBe(fx.tables.RoleChangeEvent);

    // identical timestamps, the last millisecond of a month and the first of the next
    const times = await db.sql<{ t: Date; part: string }[]>`
      select occurred_at as t, tableoid::regclass::text as part from join_events
      order by (metadata->>'legacy_id')::int limit 6`;
    expect(times[0]!.t.getTime()).toBe(times[1]!.t.getTime());
    expect(times[3]!.t.toISOString()).toBe('2024-01-31T23:59:59.999Z');
    expect(times[4]!.t.toISOString()).toBe('2024-02-01T00:00:00.000Z');
    expect(times[5]!.t.toISOString()).toBe('2024-02-01T00:00:01.234Z');
    expect(times[3]!.part).not.toBe(times[4]!.part);

    const users = await db.sql<{ role: string; ip: string | null; avatar: string | null }[]>`
      select role::text, ip_address::text as ip, avatar from users`;
    expect(new Set(users.map((u) => u.role))).toEqual(new Set(['USER', 'ADMIN', 'MODERATOR', 'BANNED']));
    expect(users.some((u) => u.avatar === null)).toBe(true);
    expect(users.map((u) => u.ip)).toContain('::ffff:192.0.2.1/128');
    const perms = await db.sql<
      { permissions: string }[]
    >`select permissions::text from guilds order by permissions desc`;
    expect(perms.map((p) => p.permissions)).toEqual(
      expect.arrayContaining(['1099511627775', '2147483647', '0']),
    );

    // references resolve through the legacy-id map
    const [orphans] = await db.sql`
      select count(*)::int as n from guilds g
      left join import_legacy_ids m on m.source_table = 'User' and m.target_id = g.user_id where m.legacy_id is null`;
    expect(orphans!.n).toBe(0);
    const [mapped] = await db.sql`select count(*)::int as n from import_legacy_ids`;
    expect(mapped!.n).toBe(fx.tables.User! + fx.tables.Guild! + fx.tables.BlockedIP! + fx.tables.BannedUser!);
  });

  it('imports nothing the second time, even without its checkpoints', async () => {
    const before = await counts(db);
    const again = await runImport(db.sql, { from: fx.path });
    expect(again.imported).toBe(0);
    expect(again.verified).toBe(true);
    await db.sql`delete from import_checkpoints`;
    const fresh = await runImport(db.sql, { from: fx.path, batchRows: 100 });
    expect(fresh.exitCode).toBe(0);
    expect(fresh.verified).toBe(true);
    expect(await counts(db)).toEqual(before);
  });

  it('reports a row changed after the import, with the sample row', async () => {
    await db.sql`
      update message_events set content = content || ' (edited)'
      where metadata->>'legacy_id' = '10'`;
    const report = await runImport(db.sql, { from: fx.path, verifyOnly: true });
    expect(report.verified).toBe(false);
    expect(report.exitCode).toBe(4);
    const message = report.tables.find((t) => t.table === 'MessageEvent')!;
    expect(message.verification!.ok).toBe(false);
    expect(message.verification!.samples![0]!.legacy_id).toBe('10');
    expect(message.verification!.samples![0]!.actual).toContain('(edited)');
    expect(report.tables.filter((t) => !t.verification!.ok)).toHaveLength(1);
  });

  it('hashes rows exactly as the server hashtextextended does, whatever the length and script', async () => {
    const texts = [''];
    for (let n = 1; n <= 40; n++)
      texts.push('abcdefghijklmnopqrstuvwxyz0123456789\x1f\x1e:n'.repeat(2).slice(0, n));
    texts.push(
      'Zoë ñ café 🎉🏳️‍🌈 مرحبا שלום \\ "q" \t\n',
      'x'.repeat(4000),
      '€'.repeat(1333),
      '𝄞'.repeat(777),
    );
    const [row] = await db.sql<{ sum: string }[]>`
      select sum(hashtextextended(t, 0))::text as sum from unnest(${texts}::text[]) t`;
    const each = await db.sql<{ h: string }[]>`
      select hashtextextended(t, 0)::text as h from unnest(${texts}::text[]) with ordinality u(t, o) order by o`;
    const all = new ContentHash();
    texts.forEach((t, i) => {
      const one = new ContentHash();
      one.add(t);
      expect(one.value().toString(), JSON.stringify(t.slice(0, 20))).toBe(each[i]!.h);
      all.add(t);
    });
    expect(all.value().toString()).toBe(row!.sum);
  });

  it('derives event ids from the legacy id and time', () => {
    const id = legacyEventId(3, Date.UTC(2024, 0, 1), 123456789);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(legacyIdOfEventId(id)).toBe(123456789);
    // Pinned: an id must never change between versions, or a re-run would store rows twice.
    expect(id).toBe('018cc251-f400-735c-8000-0000075bcd15');
    expect(legacyEventId(7, Date.UTC(2099, 11, 31, 23, 59, 59, 999), 2 ** 48 - 1)).toBe(
      '03bb2cc3-d7ff-775c-8000-ffffffffffff',
    );
    expect(legacyEventId(1, Date.UTC(2015, 0, 1), 2 ** 52 + 5)).toBe('014aa2ca-b000-715c-8010-000000000005');
  });

  it('writes timestamps for COPY exactly as toISOString does', () => {
    const times = new IsoTimes();
    const samples = [
      0,
      1,
      Date.UTC(2015, 0, 1),
      Date.UTC(2024, 1, 29, 23, 59, 59, 999),
      Date.UTC(2100, 0, 1) - 1,
    ];
    for (let i = 0; i < 20_000; i++) samples.push(Date.UTC(2015, 0, 1) + Math.floor(Math.random() * 2.7e12));
    samples.sort((a, b) => a - b);
    for (const ms of [...samples, -1, 8.64e15, 1.5]) expect(times.of(ms)).toBe(new Date(ms).toISOString());
  });
});

describe('rejects, dry run and errors', () => {
  it('writes rejects to the NDJSON file, counts them and fails unless --max-rejects allows them', async () => {
    const db = await freshDb();
    const fx = fixture('rejects.sqlite', { rows: 120, rejects: true, seed: 3 });
    const rejectFile = join(dir, 'rejects.ndjson');
    const report = await runImport(db.sql, { from: fx.path, rejectFile });
    expect(report.rejected).toBe(fx.rejects);
    expect(report.exitCode).toBe(3);
    expect(report.verified).toBe(true);
    const lines = readFileSync(rejectFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(fx.rejects);
    const byTable = Object.fromEntries(lines.map((l) => [`${l.table}:${l.legacy_id}`, l.reason]));
    expect(Object.values(byTable).sort()).toEqual(
      [
        'unparseable_date', // PresenceEvent.createdAt 'not a date'
        'out_of_range', // TypingEvent.createdAt past year 9999
        'invalid_text', // MessageEvent.content with a NUL
        'out_of_range', // JoinEvent.accountAgeDays past 32 bits
        'out_of_range', // ReactionTime.deltaMs 1.5
        'unparseable_date', // User.lastSeenAt 'yesterday'
        'orphan', // Guild of no User
        'orphan', // Guild of the rejected User
        'out_of_range', // BlockedIP 'not-an-ip'
        'missing', // BannedUser without userId
      ].sort(),
    );
    const user = lines.find((l) => l.table === 'User');
    expect(user.detail).toMatch(/lastSeenAt/);
    expect(user.row.accessToken).toBe('[redacted]');
    expect(lines.find((l) => l.table === 'TypingEvent').detail).toMatch(/outside the years 1-9999/);
    expect(
      lines
        .filter((l) => l.table === 'Guild')
        .map((l) => l.legacy_id)
        .sort(),
    ).toEqual(['zz_orphan', 'zz_orphan2']);

    const allowed = await runImport(db.sql, { from: fx.path, rejectFile, maxRejects: fx.rejects });
    expect(allowed.exitCode).toBe(0);
    expect(allowed.imported).toBe(0);
    const c = await counts(db);
    expect(c.MessageEvent).toBe(fx.tables.MessageEvent);
    expect(c.Guild).toBe(fx.tables.Guild);
  });

  it('dry run reads, validates and reports by kind without writing anything', async () => {
    const db = await freshDb();
    const fx = fixture('dry.sqlite', { rows: 120, rejects: true, seed: 3 });
    const res = await cli(['--from', fx.path, '--dry-run', '--json'], { DATABASE_URL: db.url });
    expect(res.code).toBe(3);
    const report = JSON.parse(res.stdout.trim().split('\n').pop()!);
    expect(report.dryRun).toBe(true);
    expect(report.rows).toBe(fx.total);
    expect(report.rejected).toBe(fx.rejects);
    const presence = report.tables.find((t: { table: string }) => t.table === 'PresenceEvent');
    expect(presence.findings).toEqual({ unparseable_date: 1, empty_array: 6 });
    expect(report.tables.find((t: { table: string }) => t.table === 'Guild').findings).toEqual({ orphan: 2 });
    expect(res.stdout).toMatch(/would be imported/);
    const written = await db.sql`
      select (select count(*) from import_runs) + (select count(*) from import_checkpoints)
           + (select count(*) from users) + (select count(*) from message_events) as n`;
    expect(Number(written[0]!.n)).toBe(0);
  });

  it('gives clear errors for files that are not SpyWatcher SQLite databases', async () => {
    const db = await freshDb();
    const junk = join(dir, 'junk.sqlite');
    writeFileSync(junk, Buffer.alloc(4096, 7));
    await expect(runImport(db.sql, { from: junk })).rejects.toThrow(/not an SQLite database/);
    await expect(runImport(db.sql, { from: join(dir, 'nope.sqlite') })).rejects.toThrow(
      /cannot read .*nope\.sqlite/,
    );

    const other = join(dir, 'other.sqlite');
    const o = new DatabaseSync(other);
    o.exec('create table invoices (id integer primary key, total real)');
    o.close();
    await expect(runImport(db.sql, { from: other })).rejects.toThrow(/not SpyWatcher's.*invoices/);

    const partial = fixture('partial.sqlite', { rows: 40 });
    const p = new DatabaseSync(partial.path);
    p.exec('drop table "BannedUser"; alter table "MessageEvent" drop column "content"');
    p.close();
    const error = await runImport(db.sql, { from: partial.path }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImportError);
    expect((error as ImportError).code).toBe('MISSING_TABLE');
    expect((error as Error).message).toMatch(/lacks SpyWatcher table\(s\) BannedUser/);
    const p2 = new DatabaseSync(partial.path);
    p2.exec(
      `create table "BannedUser" ("id" integer primary key, "userId" text, "username" text, "reason" text, "createdAt" datetime)`,
    );
    p2.close();
    await expect(runImport(db.sql, { from: partial.path })).rejects.toThrow(
      /MessageEvent .* lacks column\(s\) content/,
    );

    const bad = await cli(['--from', junk]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: .*is not an SQLite database/m);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
    const down = await cli(['--from', partial.path.replace('partial', 'clean')], {
      DATABASE_URL: UNREACHABLE_DATABASE_URL,
    });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot reach the target PostgreSQL/);
  });
});

describe('unusual legacy values', () => {
  const EXPECTED_FINDINGS: Record<string, Record<string, number>> = {
    User: { sentinel_date: 1, old_date: 2, empty_token: 1, unknown_role: 1 },
    BlockedIP: { future_date: 1 },
    BannedUser: { sentinel_date: 1 },
    PresenceEvent: { unknown_client: 1, sentinel_date: 1 },
    TypingEvent: { old_date: 1 },
    MessageEvent: { long_content: 1, future_date: 1 },
    JoinEvent: { negative_number: 1 },
    DeletedMessageEvent: { old_date: 1 },
    ReactionTime: { negative_number: 1 },
    RoleChangeEvent: { empty_id: 1 },
  };

  it('imports every storable row as it was on the defaults: 0 rejects, exit 0, findings counted', async () => {
    const db = await freshDb();
    const fx = fixture('odd.sqlite', { rows: 200, oddities: true, seed: 5 });

    const dry = await cli(['--from', fx.path, '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    const planned = JSON.parse(dry.stdout.trim().split('\n').pop()!);
    expect(planned.rejected).toBe(0);

    const res = await cli(['--from', fx.path, '--json'], { DATABASE_URL: db.url });
    expect(res.code, res.stderr).toBe(0);
    const report = JSON.parse(res.stdout.trim().split('\n').pop()!);
    expect(report.rejected).toBe(0);
    expect(report.verified).toBe(true);
    expect(report.rejectFile).toBeNull();
    expect(await counts(db)).toEqual(fx.tables);
    for (const [table, findings] of Object.entries(EXPECTED_FINDINGS)) {
      const t = report.tables.find((x: { table: string }) => x.table === table);
      expect(t.findings, table).toMatchObject(findings);
      // the dry run reports the same findings
      expect(planned.tables.find((x: { table: string }) => x.table === table).findings, table).toEqual(
        t.findings,
      );
    }
    expect(res.stdout).toMatch(/sentinel_date=1/);

    const [user] = await db.sql<
      {
        role: string;
        access_token: string | null;
        refresh_token: string | null;
        expires: Date;
        created: Date;
      }[]
    >`select role, access_token, refresh_token, access_token_expires_at as expires, created_at as created
      from users where discord_id = '777777777777777777'`;
    // no TOKEN_ENCRYPTION_KEYS: the OAuth tokens are not imported, and the report says so
    expect(report.warnings).toContainEqual(expect.stringContaining('TOKEN_ENCRYPTION_KEYS is not set'));
    expect(user).toEqual({
      role: 'SUPERUSER',
      access_token: null,
      refresh_token: null,
      expires: new Date(0),
      created: new Date(Date.UTC(2012, 0, 1)),
    });
    const [guild] = await db.sql`select g.name from guilds g join users u on u.id = g.user_id
      where u.discord_id = '777777777777777777'`;
    expect(guild!.name).toBe('old guild');
    const odd = async (table: string, column: string) => {
      const rows = await db.sql.unsafe<{ v: unknown; t: Date; part: string }[]>(
        `select ${column} as v, occurred_at as t, tableoid::regclass::text as part from ${table}
         order by (metadata->>'legacy_id')::int desc limit 1`,
      );
      return rows[0]!;
    };
    expect(await odd('presence_events', 'clients')).toEqual({
      v: ['desktop', 'fridge'],
      t: new Date(0),
      part: 'presence_events_p19700101',
    });
    expect((await odd('typing_events', 'user_id')).t).toEqual(new Date(1_700_000_000));
    const message = await odd('message_events', 'content');
    expect(message.v).toBe('y'.repeat(4001));
    expect(message.t).toEqual(new Date(Date.UTC(2099, 5, 1)));
    expect((await odd('join_events', 'account_age_days')).v).toBe(-5);
    expect((await odd('reaction_time_events', 'delta_ms')).v).toBe(-1);
    expect((await odd('role_change_events', 'user_id')).v).toBe('');
    expect((await odd('deleted_message_events', 'user_id')).t).toEqual(new Date(Date.UTC(2012, 4, 1, 10)));
  });

  it('still refuses those values from a live writer', async () => {
    const db = await freshDb();
    await db.sql`select sw_ensure_partition('join_events', now())`;
    await expect(
      db.sql`insert into join_events (id, occurred_at, user_id, username, guild_id, account_age_days)
             values (gen_random_uuid(), now(), '1', 'x', '2', -5)`,
    ).rejects.toThrow(/join_events_account_age_days_check/);
    await db.sql`insert into join_events (id, occurred_at, user_id, username, guild_id, account_age_days, metadata)
             values (gen_random_uuid(), now(), '1', 'x', '2', -5, '{"legacy_id": 1}')`;
  });
});

describe('resume after kill -9', () => {
  it('continues where the last commit left off and ends with exact counts', async () => {
    const db = await freshDb();
    const fx = fixture('big.sqlite', { rows: 30_000, seed: 11 });
    const child = spawn(process.execPath, [CLI, '--from', fx.path, '--batch-rows', '200'], {
      env: { ...process.env, DATABASE_URL: db.url },
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_c, s) => resolve(s)));
    // Kill once some event rows are committed, in the middle of the event tables.
    for (let i = 0; i < 1200; i++) {
      const [r] = await db.sql<{ n: number }[]>`
        select coalesce(sum(rows_imported), 0)::int as n from import_checkpoints where source_table ~ 'Event[#@]'`;
      if (r!.n >= 2000) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const [state] = await db.sql<{ done: number; rows: number }[]>`
      select count(*) filter (where completed)::int as done, coalesce(sum(rows_imported), 0)::int as rows from import_checkpoints`;
    expect(state!.rows).toBeLessThan(fx.total);
    const partial = await counts(db);
    expect(Object.values(partial).reduce((a, b) => a + b, 0)).toBe(state!.rows);

    const resumed = await cli(['--from', fx.path, '--json'], { DATABASE_URL: db.url });
    expect(resumed.code).toBe(0);
    const report = JSON.parse(resumed.stdout.trim().split('\n').pop()!);
    expect(report.verified).toBe(true);
    expect(report.imported).toBe(fx.total - state!.rows);
    expect(await counts(db)).toEqual(fx.tables);
    // A period killed mid bulk load (standalone table, not yet attached) left nothing behind.
    const [loose] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from pg_class where relkind = 'r' and relname ~ '_events_p[0-9]{8}$' and not relispartition`;
    expect(loose!.n).toBe(0);
    const [runs] =
      await db.sql`select count(*) filter (where status = 'succeeded')::int as ok from import_runs`;
    expect(runs!.ok).toBe(1);
  });
});
