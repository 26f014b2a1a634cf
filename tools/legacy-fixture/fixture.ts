import { rmSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { mulberry32 } from '@spywatcher/testing/random';

/**
 * Writes a SQLite file shaped like SpyWatcher's Prisma-era database: the same tables and
 * columns, DateTime as INTEGER milliseconds (and a few as ISO text), booleans as 0/1,
 * comma-separated lists, cuid-like text ids for users and guilds, and the awkward values a
 * real file holds. Deterministic: the same options give the same file.
 */
export interface FixtureOptions {
  path: string;
  /** Event rows in total, spread over the seven event tables (at least ~40). */
  rows: number;
  seed?: number;
  /** Months of history, starting at `start`. */
  months?: number;
  start?: Date;
  /** Add rows that PostgreSQL cannot store as they are (see addRejects). */
  rejects?: boolean;
  /** Add unusual rows that are imported as they are and reported (see addOddities). */
  oddities?: boolean;
  /** Write a few DateTime values as ISO-8601 text, as older rows hold (default true; pgloader
   * cannot load those, so its benchmark turns them off). */
  textDates?: boolean;
}

export interface FixtureSummary {
  path: string;
  tables: Record<string, number>;
  /** Rows that the importer must reject (0 unless `rejects`). */
  rejects: number;
  /** Unusual rows the importer must keep and report (0 unless `oddities`), by legacy table. */
  oddities: Record<string, number>;
  total: number;
}

export const SCHEMA = `
CREATE TABLE "_prisma_migrations" (
    "id"                    TEXT PRIMARY KEY NOT NULL,
    "checksum"              TEXT NOT NULL,
    "finished_at"           DATETIME,
    "migration_name"        TEXT NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        DATETIME,
    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0
);
CREATE TABLE "PresenceEvent" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "userId" TEXT NOT NULL, "username" TEXT NOT NULL, "clients" TEXT NOT NULL, "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE "TypingEvent" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "userId" TEXT NOT NULL, "username" TEXT NOT NULL, "channelId" TEXT NOT NULL, "channel" TEXT NOT NULL, "guildId" TEXT NOT NULL, "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE "MessageEvent" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "userId" TEXT NOT NULL, "username" TEXT NOT NULL, "channelId" TEXT NOT NULL, "channel" TEXT NOT NULL, "guildId" TEXT NOT NULL, "content" TEXT NOT NULL, "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE "JoinEvent" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "userId" TEXT NOT NULL, "username" TEXT NOT NULL, "guildId" TEXT NOT NULL, "accountAgeDays" INTEGER NOT NULL, "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE "DeletedMessageEvent" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "userId" TEXT NOT NULL, "username" TEXT NOT NULL, "channelId" TEXT NOT NULL, "channel" TEXT NOT NULL, "guildId" TEXT NOT NULL, "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE "ReactionTime" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "observerId" TEXT NOT NULL, "observerName" TEXT NOT NULL, "actorId" TEXT NOT NULL, "actorName" TEXT NOT NULL, "channelId" TEXT NOT NULL, "guildId" TEXT NOT NULL, "deltaMs" INTEGER NOT NULL, "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE "RoleChangeEvent" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "userId" TEXT NOT NULL, "username" TEXT NOT NULL, "guildId" TEXT NOT NULL, "addedRoles" TEXT NOT NULL, "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE "BlockedIP" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "ip" TEXT NOT NULL, "reason" TEXT, "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE UNIQUE INDEX "BlockedIP_ip_key" ON "BlockedIP"("ip");
CREATE TABLE "BannedUser" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "userId" TEXT NOT NULL, "username" TEXT NOT NULL, "reason" TEXT, "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE UNIQUE INDEX "BannedUser_userId_key" ON "BannedUser"("userId");
CREATE TABLE "User" ("id" TEXT NOT NULL PRIMARY KEY, "discordId" TEXT NOT NULL, "username" TEXT NOT NULL, "discriminator" TEXT NOT NULL, "avatar" TEXT, "email" TEXT, "locale" TEXT, "verified" BOOLEAN NOT NULL, "ipAddress" TEXT, "userAgent" TEXT, "accessToken" TEXT NOT NULL, "refreshToken" TEXT NOT NULL, "refreshTokenIssuedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, "accessTokenExpiresAt" DATETIME NOT NULL, "lastSeenAt" DATETIME NOT NULL, "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, "updatedAt" DATETIME NOT NULL, "role" TEXT NOT NULL DEFAULT 'USER');
CREATE UNIQUE INDEX "User_discordId_key" ON "User"("discordId");
CREATE TABLE "Guild" ("id" TEXT NOT NULL PRIMARY KEY, "guildId" TEXT NOT NULL, "name" TEXT NOT NULL, "icon" TEXT, "owner" BOOLEAN NOT NULL, "permissions" BIGINT NOT NULL, "userId" TEXT NOT NULL, CONSTRAINT "Guild_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE RESTRICT ON UPDATE CASCADE);
CREATE UNIQUE INDEX "Guild_guildId_key" ON "Guild"("guildId");
`;

/** The awkward values, used first in every table so even a tiny file holds all of them. */
export const AWKWARD_CONTENT = [
  '',
  `${'x'.repeat(3998)}😀🙂`,
  'مرحبا بالعالم 👋🏽 שלום עולם',
  '<@123456789012345678> see <#987654321098765432> **bold** __u__ `code` <:pepe:112233445566778899> https://example.com/a?b=1 <t:1700000000:R>',
  'He said "hi" and it\'s C:\\path\\to\\file \\n not a newline; a real one:\nand a\ttab',
  '||spoiler|| > quote ~~strike~~ ```js\nconsole.log("x")\n```',
];
const NAMES = ['alice', 'Bob 🐸', 'ناصر', 'דוד', "o'brien", 'back\\slash', 'quote"d', 'Zoë', 'user_x'];
const WORDS = [
  'hello',
  'raid',
  'tonight',
  'gg',
  'lol',
  'anyone',
  'up',
  'for',
  'ranked',
  'café',
  'naïve',
  'https://discord.gg/abc',
  'ok',
];
const CLIENT_SETS = ['desktop,web', '', 'mobile', 'desktop', 'web', 'desktop, mobile ,web'];
const ROLE_SETS = ['', '111111111111111111', '111111111111111111,222222222222222222', 'Moderator,VIP'];
const ROLES = ['USER', 'ADMIN', 'MODERATOR', 'BANNED'];
const IPS = ['203.0.113.7', '2001:db8::1', '::ffff:192.0.2.1', 'fe80::1', '2001:DB8:0:0:0:0:0:2', null];

const SHARE: [string, number][] = [
  ['PresenceEvent', 0.3],
  ['TypingEvent', 0.2],
  ['MessageEvent', 0.25],
  ['JoinEvent', 0.05],
  ['DeletedMessageEvent', 0.05],
  ['ReactionTime', 0.1],
  ['RoleChangeEvent', 0.05],
];

const snowflake = (n: number) => String(100000000000000000n + BigInt(n) * 4194304n);

export function writeLegacyFixture(options: FixtureOptions): FixtureSummary {
  const rnd = mulberry32(options.seed ?? 42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const start = (options.start ?? new Date(Date.UTC(2024, 0, 1))).getTime();
  const months = options.months ?? 3;
  const end = new Date(start);
  end.setUTCMonth(end.getUTCMonth() + months);
  const span = end.getTime() - start;
  const textDates = options.textDates !== false;
  rmSync(options.path, { force: true });
  const db = new DatabaseSync(options.path, { enableForeignKeyConstraints: false });
  db.exec('pragma journal_mode = off; pragma synchronous = off;');
  db.exec(SCHEMA);
  const tables: Record<string, number> = {};
  let rejects = 0;
  db.exec('begin');

  const migrations = db.prepare(
    'insert into _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count, started_at) values (?, ?, ?, ?, 1, ?)',
  );
  for (const [i, name] of ['20240101000000_init', '20240301000000_roles'].entries()) {
    const hex = Math.floor(rnd() * 2 ** 48)
      .toString(16)
      .padStart(12, '0');
    migrations.run(
      `6a1f2c3d-${hex.slice(0, 4)}-4e5f-8a9b-${hex}`,
      `${hex}${'0'.repeat(52)}`,
      start - 86400000 + i,
      name,
      start - 86400000,
    );
  }

  // Users: every role, NULL optional fields, IPv4/IPv6, dates as INTEGER ms and as text.
  const userCount = Math.max(12, Math.min(2000, Math.floor(options.rows / 500)));
  const users = db.prepare(
    `insert into "User" values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const userIds: string[] = [];
  for (let i = 0; i < userCount; i++) {
    const id = `cl${(1000000 + i).toString(36)}${Math.floor(rnd() * 36 ** 6)
      .toString(36)
      .padStart(6, '0')}`;
    userIds.push(id);
    const created = start + Math.floor(rnd() * span);
    const full = i % 2 === 0;
    users.run(
      id,
      snowflake(i + 1),
      NAMES[i % NAMES.length]!,
      i % 3 === 0 ? '0' : String(1000 + i),
      full ? `a_${i.toString(16)}deadbeef` : null,
      full ? `user${i}@example.com` : null,
      full ? pick(['en-US', 'fr', 'he', 'ar']) : null,
      i % 2,
      IPS[i % IPS.length]!,
      full ? 'Mozilla/5.0 (X11; Linux x86_64) "quoted" \\ agent' : null,
      `at_${i}_${'t'.repeat(20)}`,
      `rt_${i}`,
      i === 1 && textDates ? new Date(created).toISOString() : created,
      created + 7 * 86400000,
      i === 2 && textDates
        ? new Date(created + 1000).toISOString().replace('T', ' ').slice(0, 19)
        : created + 1000,
      created,
      created + 5000,
      ROLES[i % ROLES.length]!,
    );
  }
  tables.User = userCount;

  const guilds = db.prepare(`insert into "Guild" values (?, ?, ?, ?, ?, ?, ?)`);
  const guildCount = Math.max(6, Math.floor(userCount / 2));
  for (let i = 0; i < guildCount; i++) {
    guilds.run(
      `cg${(2000000 + i).toString(36)}${i.toString(36).padStart(6, '0')}`,
      snowflake(900000 + i),
      i === 0 ? 'Café 🎮 «guild» "quoted"' : `guild ${i}`,
      i % 2 ? null : `icon_${i}`,
      i % 2,
      i === 0 ? 2147483647 : i === 1 ? 1099511627775n : i === 2 ? 0 : 104324673,
      userIds[i % userIds.length]!,
    );
  }
  tables.Guild = guildCount;

  const blocked = db.prepare(`insert into "BlockedIP" (ip, reason, createdAt) values (?, ?, ?)`);
  const blockedIps = [
    '198.51.100.1',
    '2001:db8:0:0:0:0:0:3',
    '10.0.0.0/8',
    '::1',
    '2001:db8:abcd::/48',
    '192.0.2.55',
  ];
  const blockedCount = Math.max(blockedIps.length, Math.min(500, Math.floor(options.rows / 2000)));
  for (let i = 0; i < blockedCount; i++) {
    const ip = blockedIps[i] ?? `100.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    blocked.run(ip, i % 2 ? null : `abuse "${i}" \\ spam`, start + i * 60000);
  }
  tables.BlockedIP = blockedCount;

  const banned = db.prepare(
    `insert into "BannedUser" (userId, username, reason, createdAt) values (?, ?, ?, ?)`,
  );
  const bannedCount = Math.max(4, Math.min(500, Math.floor(options.rows / 2000)));
  for (let i = 0; i < bannedCount; i++) {
    banned.run(snowflake(500000 + i), NAMES[i % NAMES.length]!, i % 2 ? null : 'raid 🚫', start + i * 1000);
  }
  tables.BannedUser = bannedCount;

  const monthStart = new Date(start);
  monthStart.setUTCMonth(monthStart.getUTCMonth() + 1);
  const boundary = monthStart.getTime();
  const eventTotal = Math.max(options.rows, 40);
  for (const [table, share] of SHARE) {
    const n = Math.max(6, Math.round(eventTotal * share));
    tables[table] = n;
    const insert = eventInsert(db, table);
    for (let i = 0; i < n; i++) {
      // Awkward times first: identical timestamps, both sides of a month boundary, ISO text.
      let t: number | string = start + Math.floor((i * span) / n) + Math.floor(rnd() * 1000);
      if (i < 3) t = start + 3_600_000;
      else if (i === 3) t = boundary - 1;
      else if (i === 4) t = boundary;
      else if (i === 5) t = textDates ? new Date(boundary + 1234).toISOString() : boundary + 1234;
      const user = Math.floor(rnd() * userCount);
      insert(i, t, user, rnd, pick);
    }
  }

  const oddities = options.oddities ? addOddities(db, start) : {};
  for (const [table, n] of Object.entries(oddities)) tables[table] = (tables[table] ?? 0) + n;
  if (options.rejects) rejects = addRejects(db, start);
  db.exec('commit');
  db.close();
  const total = Object.values(tables).reduce((a, b) => a + b, 0) + rejects;
  return { path: options.path, tables, rejects, oddities, total };
}

type Insert = (
  i: number,
  t: number | string,
  user: number,
  rnd: () => number,
  pick: <T>(xs: readonly T[]) => T,
) => void;

function eventInsert(db: DatabaseSync, table: string): Insert {
  const channel = (u: number) => snowflake(700000 + (u % 17));
  const guild = (u: number) => snowflake(900000 + (u % 5));
  const name = (u: number) => NAMES[u % NAMES.length]!;
  switch (table) {
    case 'PresenceEvent': {
      const s = db.prepare(
        `insert into "PresenceEvent" (userId, username, clients, createdAt) values (?, ?, ?, ?)`,
      );
      return (i, t, u) => s.run(snowflake(u + 1), name(u), CLIENT_SETS[i % CLIENT_SETS.length]!, t);
    }
    case 'TypingEvent': {
      const s = db.prepare(
        `insert into "TypingEvent" (userId, username, channelId, channel, guildId, createdAt) values (?, ?, ?, ?, ?, ?)`,
      );
      return (_i, t, u) => s.run(snowflake(u + 1), name(u), channel(u), `général-${u % 17} 💬`, guild(u), t);
    }
    case 'MessageEvent': {
      const s = db.prepare(
        `insert into "MessageEvent" (userId, username, channelId, channel, guildId, content, createdAt) values (?, ?, ?, ?, ?, ?, ?)`,
      );
      return (i, t, u, rnd, pick) => {
        let content: string;
        if (i < AWKWARD_CONTENT.length) content = AWKWARD_CONTENT[i]!;
        else {
          const words = 3 + Math.floor(rnd() * 14);
          content = Array.from({ length: words }, () => pick(WORDS)).join(' ');
        }
        s.run(snowflake(u + 1), name(u), channel(u), `general-${u % 17}`, guild(u), content, t);
      };
    }
    case 'JoinEvent': {
      const s = db.prepare(
        `insert into "JoinEvent" (userId, username, guildId, accountAgeDays, createdAt) values (?, ?, ?, ?, ?)`,
      );
      return (i, t, u) => s.run(snowflake(u + 1), name(u), guild(u), i === 0 ? 0 : (u * 37) % 3000, t);
    }
    case 'DeletedMessageEvent': {
      const s = db.prepare(
        `insert into "DeletedMessageEvent" (userId, username, channelId, channel, guildId, createdAt) values (?, ?, ?, ?, ?, ?)`,
      );
      return (_i, t, u) => s.run(snowflake(u + 1), name(u), channel(u), `general-${u % 17}`, guild(u), t);
    }
    case 'ReactionTime': {
      const s = db.prepare(
        `insert into "ReactionTime" (observerId, observerName, actorId, actorName, channelId, guildId, deltaMs, createdAt) values (?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      return (i, t, u, rnd) =>
        s.run(
          snowflake(u + 1),
          name(u),
          snowflake(u + 2),
          name(u + 1),
          channel(u),
          guild(u),
          i === 0 ? 0 : Math.floor(rnd() * 60000),
          t,
        );
    }
    default: {
      const s = db.prepare(
        `insert into "RoleChangeEvent" (userId, username, guildId, addedRoles, createdAt) values (?, ?, ?, ?, ?)`,
      );
      return (i, t, u) => s.run(snowflake(u + 1), name(u), guild(u), ROLE_SETS[i % ROLE_SETS.length]!, t);
    }
  }
}

/**
 * Rows PostgreSQL cannot store as they are, one per kind: a date that is no date, a date past
 * year 9999, a NUL character, an integer past 32 bits, a fraction where a whole number goes, a
 * User date that is no date (and the Guild that points at that User), a Guild whose User does
 * not exist, an address that is no IP, a BannedUser without the user id it is keyed by.
 * Returns how many.
 */
function addRejects(db: DatabaseSync, start: number): number {
  const run = (q: string, ...args: (string | number | null)[]) => db.prepare(q).run(...args);
  run(
    `insert into "PresenceEvent" (userId, username, clients, createdAt) values ('1', 'x', 'desktop', 'not a date')`,
  );
  run(
    `insert into "TypingEvent" (userId, username, channelId, channel, guildId, createdAt) values ('1', 'x', '2', 'c', '3', ?)`,
    1e17,
  );
  run(
    `insert into "MessageEvent" (userId, username, channelId, channel, guildId, content, createdAt) values ('1', 'x', '2', 'c', '3', ?, ?)`,
    'nul \0 inside',
    start,
  );
  run(
    `insert into "JoinEvent" (userId, username, guildId, accountAgeDays, createdAt) values ('1', 'x', '3', 3000000000, ?)`,
    start,
  );
  run(
    `insert into "ReactionTime" (observerId, observerName, actorId, actorName, channelId, guildId, deltaMs, createdAt) values ('1', 'a', '2', 'b', '3', '4', 1.5, ?)`,
    start,
  );
  run(
    `insert into "User" values ('zz_bad_date', '999999999999999999', 'root', '0', null, null, null, 1, null, null, 'a', 'r', ?, ?, 'yesterday', ?, ?, 'USER')`,
    start,
    start,
    start,
    start,
  );
  run(`insert into "Guild" values ('zz_orphan', '888888888888888888', 'orphan', null, 0, 8, 'no_such_user')`);
  run(
    `insert into "Guild" values ('zz_orphan2', '888888888888888889', 'of a rejected user', null, 0, 8, 'zz_bad_date')`,
  );
  run(`insert into "BlockedIP" (ip, reason, createdAt) values ('not-an-ip', null, ?)`, start);
  run(`insert into "BannedUser" (userId, username, reason, createdAt) values ('', 'x', null, ?)`, start);
  return 10;
}

/**
 * Values the legacy application stored that a live publisher could not send, all storable:
 * the epoch as an expiry with empty tokens, an unknown role, dates before Discord (one in
 * seconds instead of milliseconds), in 2099 and as SQLite text, an unknown client, an empty
 * user id, negative counts, a message over 4,000 characters. Returns the rows added per table.
 */
function addOddities(db: DatabaseSync, start: number): Record<string, number> {
  const run = (q: string, ...args: (string | number | null)[]) => db.prepare(q).run(...args);
  const future = Date.UTC(2099, 5, 1);
  run(
    `insert into "User" values ('zz_revoked', '777777777777777777', 'gone', '0', null, null, null, 0, null, null, '', '', ?, 0, ?, ?, ?, 'SUPERUSER')`,
    Date.UTC(2012, 0, 1),
    start,
    Date.UTC(2012, 0, 1),
    start,
  );
  run(`insert into "Guild" values ('zz_guild', '666666666666666666', 'old guild', null, 1, 8, 'zz_revoked')`);
  run(`insert into "BlockedIP" (ip, reason, createdAt) values ('192.0.2.200', 'later', ?)`, future);
  run(
    `insert into "BannedUser" (userId, username, reason, createdAt) values ('555555555555555555', 'x', null, 0)`,
  );
  run(
    `insert into "PresenceEvent" (userId, username, clients, createdAt) values ('1', 'x', 'desktop,fridge', 0)`,
  );
  run(
    `insert into "TypingEvent" (userId, username, channelId, channel, guildId, createdAt) values ('1', 'x', '2', 'c', '3', 1700000000)`,
  );
  run(
    `insert into "MessageEvent" (userId, username, channelId, channel, guildId, content, createdAt) values ('1', 'x', '2', 'c', '3', ?, ?)`,
    'y'.repeat(4001),
    future,
  );
  run(
    `insert into "JoinEvent" (userId, username, guildId, accountAgeDays, createdAt) values ('1', 'x', '3', -5, ?)`,
    start,
  );
  run(
    `insert into "DeletedMessageEvent" (userId, username, channelId, channel, guildId, createdAt) values ('1', 'x', '2', 'c', '3', '2012-05-01 10:00:00')`,
  );
  run(
    `insert into "ReactionTime" (observerId, observerName, actorId, actorName, channelId, guildId, deltaMs, createdAt) values ('1', 'a', '2', 'b', '3', '4', -1, ?)`,
    start,
  );
  run(
    `insert into "RoleChangeEvent" (userId, username, guildId, addedRoles, createdAt) values ('', 'x', '3', '', ?)`,
    start,
  );
  const one = ['User', 'Guild', 'BlockedIP', 'BannedUser'].concat(SHARE.map(([t]) => t));
  return Object.fromEntries(one.map((t) => [t, 1]));
}
