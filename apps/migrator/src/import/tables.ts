import type { EventType } from '@spywatcher/db';
import { uuidv5 } from './ids.ts';
import {
  codePointLength,
  EVENT_MIN_MS,
  isProblem,
  type Problem,
  REFERENCE_MIN_MS,
  splitList,
  toBool,
  toEpochMs,
  toInet,
  toInt32,
  toInt64,
  toOptionalText,
  toText,
} from './values.ts';

/**
 * How a value is written in the canonical form both sides hash for verification. The
 * same spec gives the SQL expression over the stored row and the string Node makes from the
 * converted source row (see canonical.ts).
 */
export type CanonKind = 'text' | 'ts' | 'arr' | 'bool' | 'int' | 'inet';

export interface Column {
  name: string;
  kind: CanonKind;
  nullable?: boolean;
  /** PostgreSQL type, for staging tables. */
  pgType: string;
  /** Expression over the stored row for verification (default `t.<name>`); false = not hashed. */
  verify?: string | false;
}

/** Counted per table: problems make a row a reject; `empty_array` is only reported. */
export type FindingKind = Problem['problem'] | 'empty_array';
export type Findings = Partial<Record<FindingKind, number>>;

export function note(findings: Findings, kind: FindingKind): void {
  findings[kind] = (findings[kind] ?? 0) + 1;
}

export type Row = Record<string, unknown>;
/** Converted values in column order, or why the row cannot be imported. */
export type Converted = unknown[] | Problem;

interface BaseSpec {
  /** Table name in the legacy SQLite file. */
  legacy: string;
  /** Columns the legacy table must have. */
  legacyColumns: string[];
  target: string;
  keyType: 'int' | 'text';
}

export interface EventSpec extends BaseSpec {
  kind: 'event';
  type: EventType;
  /** 4-bit code in the derived event id (ids.ts). */
  code: number;
  /** Columns after the common id, occurred_at and metadata. */
  columns: Column[];
  convert(row: Row, findings: Findings): Converted;
}

export interface ReferenceSpec extends BaseSpec {
  kind: 'reference';
  /** Staging columns: legacy_id first, then what the insert needs. */
  columns: Column[];
  convert(row: Row, findings: Findings, ctx: ConvertContext): Converted;
  /** Inserts staged rows (ON CONFLICT DO NOTHING) and maps legacy ids to target ids. */
  insertSql(stage: string): string[];
  /** Joins for verification: `t` is the target row, `m` its import_legacy_ids row. */
  verifyFrom: string;
  /** Read integers as BigInt (Guild.permissions exceeds 2^53). */
  bigints?: boolean;
}

export type TableSpec = EventSpec | ReferenceSpec;

export interface ConvertContext {
  /** Legacy User ids that were rejected, so the Guilds pointing at them are orphans. */
  rejectedUsers: Set<string>;
  /** Legacy User ids present in the file. */
  userExists: (id: string) => boolean;
}

const text = (name: string, verify?: string): Column => ({ name, kind: 'text', pgType: 'text', verify });
const ntext = (name: string): Column => ({ name, kind: 'text', nullable: true, pgType: 'text' });

/** Runs each conversion step, stopping at the first problem. */
function collect(values: unknown[]): Converted {
  for (const v of values) if (isProblem(v)) return v;
  return values;
}

const MAX_CONTENT = 4000;
const CLIENTS = new Set(['desktop', 'web', 'mobile']);

function clients(value: unknown, findings: Findings): string[] | Problem {
  const list = splitList(value, 'clients');
  if (isProblem(list)) return list;
  if (list.length === 0) note(findings, 'empty_array');
  for (const c of list) {
    if (!CLIENTS.has(c))
      return {
        problem: 'out_of_range',
        detail: `clients: ${JSON.stringify(c)} is not desktop, web or mobile`,
      };
  }
  return list;
}

function content(value: unknown): string | Problem {
  const s = toText(value, 'content');
  if (isProblem(s)) return s;
  const n = codePointLength(s, MAX_CONTENT);
  if (n > MAX_CONTENT)
    return { problem: 'out_of_range', detail: `content: ${n} characters (at most ${MAX_CONTENT})` };
  return s;
}

const id = (v: unknown, column: string) => toText(v, column, { nonEmpty: true });

export const EVENT_SPECS: EventSpec[] = [
  {
    kind: 'event',
    legacy: 'PresenceEvent',
    type: 'presence',
    target: 'presence_events',
    code: 1,
    keyType: 'int',
    legacyColumns: ['id', 'userId', 'username', 'clients', 'createdAt'],
    columns: [
      text('user_id'),
      text('username'),
      ntext('guild_id'),
      { name: 'clients', kind: 'arr', pgType: 'text[]' },
    ],
    convert: (r, f) =>
      collect([id(r.userId, 'userId'), toText(r.username, 'username'), null, clients(r.clients, f)]),
  },
  {
    kind: 'event',
    legacy: 'TypingEvent',
    type: 'typing',
    target: 'typing_events',
    code: 2,
    keyType: 'int',
    legacyColumns: ['id', 'userId', 'username', 'channelId', 'channel', 'guildId', 'createdAt'],
    columns: [text('user_id'), text('username'), text('channel_id'), text('channel_name'), text('guild_id')],
    convert: (r) =>
      collect([
        id(r.userId, 'userId'),
        toText(r.username, 'username'),
        toText(r.channelId, 'channelId'),
        toText(r.channel, 'channel'),
        toText(r.guildId, 'guildId'),
      ]),
  },
  {
    kind: 'event',
    legacy: 'MessageEvent',
    type: 'message',
    target: 'message_events',
    code: 3,
    keyType: 'int',
    legacyColumns: ['id', 'userId', 'username', 'channelId', 'channel', 'guildId', 'content', 'createdAt'],
    columns: [
      text('user_id'),
      text('username'),
      text('channel_id'),
      text('channel_name'),
      text('guild_id'),
      text('content'),
    ],
    convert: (r) =>
      collect([
        id(r.userId, 'userId'),
        toText(r.username, 'username'),
        toText(r.channelId, 'channelId'),
        toText(r.channel, 'channel'),
        toText(r.guildId, 'guildId'),
        content(r.content),
      ]),
  },
  {
    kind: 'event',
    legacy: 'JoinEvent',
    type: 'join',
    target: 'join_events',
    code: 4,
    keyType: 'int',
    legacyColumns: ['id', 'userId', 'username', 'guildId', 'accountAgeDays', 'createdAt'],
    columns: [
      text('user_id'),
      text('username'),
      text('guild_id'),
      { name: 'account_age_days', kind: 'int', pgType: 'integer' },
    ],
    convert: (r) =>
      collect([
        id(r.userId, 'userId'),
        toText(r.username, 'username'),
        toText(r.guildId, 'guildId'),
        toInt32(r.accountAgeDays, 'accountAgeDays'),
      ]),
  },
  {
    kind: 'event',
    legacy: 'DeletedMessageEvent',
    type: 'deleted_message',
    target: 'deleted_message_events',
    code: 5,
    keyType: 'int',
    legacyColumns: ['id', 'userId', 'username', 'channelId', 'channel', 'guildId', 'createdAt'],
    columns: [text('user_id'), text('username'), text('channel_id'), text('channel_name'), text('guild_id')],
    convert: (r) =>
      collect([
        id(r.userId, 'userId'),
        toText(r.username, 'username'),
        toText(r.channelId, 'channelId'),
        toText(r.channel, 'channel'),
        toText(r.guildId, 'guildId'),
      ]),
  },
  {
    kind: 'event',
    legacy: 'ReactionTime',
    type: 'reaction_time',
    target: 'reaction_time_events',
    code: 6,
    keyType: 'int',
    legacyColumns: [
      'id',
      'observerId',
      'observerName',
      'actorId',
      'actorName',
      'channelId',
      'guildId',
      'deltaMs',
      'createdAt',
    ],
    columns: [
      text('observer_id'),
      text('observer_name'),
      text('actor_id'),
      text('actor_name'),
      text('channel_id'),
      text('guild_id'),
      { name: 'delta_ms', kind: 'int', pgType: 'integer' },
    ],
    convert: (r) =>
      collect([
        id(r.observerId, 'observerId'),
        toText(r.observerName, 'observerName'),
        id(r.actorId, 'actorId'),
        toText(r.actorName, 'actorName'),
        toText(r.channelId, 'channelId'),
        toText(r.guildId, 'guildId'),
        toInt32(r.deltaMs, 'deltaMs'),
      ]),
  },
  {
    kind: 'event',
    legacy: 'RoleChangeEvent',
    type: 'role_change',
    target: 'role_change_events',
    code: 7,
    keyType: 'int',
    legacyColumns: ['id', 'userId', 'username', 'guildId', 'addedRoles', 'createdAt'],
    columns: [
      text('user_id'),
      text('username'),
      text('guild_id'),
      { name: 'added_roles', kind: 'arr', pgType: 'text[]' },
    ],
    convert: (r, f) => {
      const roles = splitList(r.addedRoles, 'addedRoles');
      if (Array.isArray(roles) && roles.length === 0) note(f, 'empty_array');
      return collect([
        id(r.userId, 'userId'),
        toText(r.username, 'username'),
        toText(r.guildId, 'guildId'),
        roles,
      ]);
    },
  },
];

const ROLES = new Set(['USER', 'ADMIN', 'MODERATOR', 'BANNED']);
const legacyId: Column = { name: 'legacy_id', kind: 'text', pgType: 'text', verify: 'm.legacy_id' };
const uuidCol: Column = { name: 'id', kind: 'text', pgType: 'uuid', verify: false };
const ts = (name: string): Column => ({ name, kind: 'ts', pgType: 'timestamptz' });
const refTs = (v: unknown, column: string) => toEpochMs(v, column, REFERENCE_MIN_MS);

function role(value: unknown): string | Problem {
  if (typeof value === 'string' && ROLES.has(value)) return value;
  return {
    problem: 'out_of_range',
    detail: `role: ${JSON.stringify(value)} is not USER, ADMIN, MODERATOR or BANNED`,
  };
}

function mapInsert(stage: string, legacyTable: string, target: string, naturalKey: string): string {
  return `insert into import_legacy_ids (source_table, legacy_id, target_table, target_id)
    select '${legacyTable}', s.legacy_id, '${target}', t.id from ${stage} s join ${target} t on t.${naturalKey} = s.${naturalKey}
    on conflict do nothing`;
}

const verifyFrom = (legacyTable: string, target: string) =>
  `import_legacy_ids m join ${target} t on t.id = m.target_id where m.source_table = '${legacyTable}'`;

export const REFERENCE_SPECS: ReferenceSpec[] = [
  {
    kind: 'reference',
    legacy: 'User',
    target: 'users',
    keyType: 'text',
    legacyColumns: [
      'id',
      'discordId',
      'username',
      'discriminator',
      'avatar',
      'email',
      'locale',
      'verified',
      'ipAddress',
      'userAgent',
      'accessToken',
      'refreshToken',
      'refreshTokenIssuedAt',
      'accessTokenExpiresAt',
      'lastSeenAt',
      'createdAt',
      'updatedAt',
      'role',
    ],
    columns: [
      legacyId,
      uuidCol,
      text('discord_id'),
      text('username'),
      text('discriminator'),
      ntext('avatar'),
      ntext('email'),
      ntext('locale'),
      { name: 'verified', kind: 'bool', pgType: 'boolean' },
      { name: 'ip_address', kind: 'inet', nullable: true, pgType: 'inet' },
      ntext('user_agent'),
      text('access_token'),
      text('refresh_token'),
      ts('refresh_token_issued_at'),
      ts('access_token_expires_at'),
      ts('last_seen_at'),
      { name: 'role', kind: 'text', pgType: 'user_role' },
      ts('created_at'),
      ts('updated_at'),
    ],
    convert: (r) =>
      collect([
        toText(r.id, 'id', { nonEmpty: true }),
        uuidv5(`User:${String(r.id)}`),
        id(r.discordId, 'discordId'),
        toText(r.username, 'username'),
        toText(r.discriminator, 'discriminator'),
        toOptionalText(r.avatar, 'avatar'),
        toOptionalText(r.email, 'email'),
        toOptionalText(r.locale, 'locale'),
        toBool(r.verified, 'verified'),
        r.ipAddress === null || r.ipAddress === undefined ? null : toInet(r.ipAddress, 'ipAddress'),
        toOptionalText(r.userAgent, 'userAgent'),
        toText(r.accessToken, 'accessToken'),
        toText(r.refreshToken, 'refreshToken'),
        refTs(r.refreshTokenIssuedAt, 'refreshTokenIssuedAt'),
        refTs(r.accessTokenExpiresAt, 'accessTokenExpiresAt'),
        refTs(r.lastSeenAt, 'lastSeenAt'),
        role(r.role),
        refTs(r.createdAt, 'createdAt'),
        refTs(r.updatedAt, 'updatedAt'),
      ]),
    insertSql: (stage) => [
      `insert into users (id, discord_id, username, discriminator, avatar, email, locale, verified, ip_address, user_agent,
         access_token, refresh_token, refresh_token_issued_at, access_token_expires_at, last_seen_at, role, created_at, updated_at)
       select id, discord_id, username, discriminator, avatar, email, locale, verified, ip_address, user_agent,
         access_token, refresh_token, refresh_token_issued_at, access_token_expires_at, last_seen_at, role, created_at, updated_at
       from ${stage} s on conflict do nothing`,
      mapInsert(stage, 'User', 'users', 'discord_id'),
    ],
    verifyFrom: verifyFrom('User', 'users'),
  },
  {
    kind: 'reference',
    legacy: 'Guild',
    target: 'guilds',
    keyType: 'text',
    bigints: true,
    legacyColumns: ['id', 'guildId', 'name', 'icon', 'owner', 'permissions', 'userId'],
    columns: [
      legacyId,
      uuidCol,
      text('guild_id'),
      text('name'),
      ntext('icon'),
      { name: 'owner', kind: 'bool', pgType: 'boolean' },
      { name: 'permissions', kind: 'int', pgType: 'bigint' },
      text(
        'user_legacy_id',
        `(select mu.legacy_id from import_legacy_ids mu where mu.source_table = 'User' and mu.target_id = t.user_id order by 1 limit 1)`,
      ),
    ],
    convert: (r, _f, ctx) => {
      const user = String(r.userId);
      if (r.userId === null || !ctx.userExists(user) || ctx.rejectedUsers.has(user)) {
        return {
          problem: 'orphan',
          detail: `userId: ${JSON.stringify(r.userId)} ${ctx.rejectedUsers.has(user) ? 'was rejected' : 'has no User row'} (orphan)`,
        };
      }
      return collect([
        toText(r.id, 'id', { nonEmpty: true }),
        uuidv5(`Guild:${String(r.id)}`),
        id(r.guildId, 'guildId'),
        toText(r.name, 'name'),
        toOptionalText(r.icon, 'icon'),
        toBool(r.owner, 'owner'),
        toInt64(r.permissions, 'permissions'),
        user,
      ]);
    },
    insertSql: (stage) => [
      `insert into guilds (id, guild_id, name, icon, owner, permissions, user_id)
       select s.id, s.guild_id, s.name, s.icon, s.owner, s.permissions, m.target_id
       from ${stage} s join import_legacy_ids m on m.source_table = 'User' and m.legacy_id = s.user_legacy_id
       on conflict do nothing`,
      mapInsert(stage, 'Guild', 'guilds', 'guild_id'),
    ],
    verifyFrom: verifyFrom('Guild', 'guilds'),
  },
  {
    kind: 'reference',
    legacy: 'BlockedIP',
    target: 'blocked_ips',
    keyType: 'int',
    legacyColumns: ['id', 'ip', 'reason', 'createdAt'],
    columns: [
      legacyId,
      uuidCol,
      { name: 'ip', kind: 'inet', pgType: 'inet' },
      ntext('reason'),
      ts('created_at'),
    ],
    convert: (r) =>
      collect([
        String(r.id),
        uuidv5(`BlockedIP:${String(r.id)}`),
        toInet(r.ip, 'ip'),
        toOptionalText(r.reason, 'reason'),
        refTs(r.createdAt, 'createdAt'),
      ]),
    insertSql: (stage) => [
      `insert into blocked_ips (id, ip, reason, created_at) select id, ip, reason, created_at from ${stage} s on conflict do nothing`,
      mapInsert(stage, 'BlockedIP', 'blocked_ips', 'ip'),
    ],
    verifyFrom: verifyFrom('BlockedIP', 'blocked_ips'),
  },
  {
    kind: 'reference',
    legacy: 'BannedUser',
    target: 'banned_users',
    keyType: 'int',
    legacyColumns: ['id', 'userId', 'username', 'reason', 'createdAt'],
    columns: [legacyId, uuidCol, text('user_id'), text('username'), ntext('reason'), ts('created_at')],
    convert: (r) =>
      collect([
        String(r.id),
        uuidv5(`BannedUser:${String(r.id)}`),
        id(r.userId, 'userId'),
        toText(r.username, 'username'),
        toOptionalText(r.reason, 'reason'),
        refTs(r.createdAt, 'createdAt'),
      ]),
    insertSql: (stage) => [
      `insert into banned_users (id, user_id, username, reason, created_at)
       select id, user_id, username, reason, created_at from ${stage} s on conflict do nothing`,
      mapInsert(stage, 'BannedUser', 'banned_users', 'user_id'),
    ],
    verifyFrom: verifyFrom('BannedUser', 'banned_users'),
  },
];

/** Import order: users before the guilds that reference them; events last (the bulk). */
export const TABLE_SPECS: TableSpec[] = [...REFERENCE_SPECS, ...EVENT_SPECS];

export function eventCreatedAt(row: Row): number | Problem {
  return toEpochMs(row.createdAt, 'createdAt', EVENT_MIN_MS);
}

/** Columns every event row starts with in the canonical form (ids.ts, canonical.ts). */
export const EVENT_HEAD: Column[] = [
  { name: 'id', kind: 'text', pgType: 'uuid' },
  { name: 'occurred_at', kind: 'ts', pgType: 'timestamptz' },
  { name: 'legacy_id', kind: 'text', pgType: 'text', verify: `t.metadata->>'legacy_id'` },
];

/** The columns hashed for verification, in order. */
export function hashColumns(spec: TableSpec): Column[] {
  return spec.kind === 'event' ? [...EVENT_HEAD, ...spec.columns] : spec.columns;
}
