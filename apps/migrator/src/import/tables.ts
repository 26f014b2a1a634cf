import type { EventType } from '@spywatcher/events';
import { CLIENTS, CONTENT_MAX_CHARS } from '@spywatcher/events';
import { uuidv5 } from './ids.ts';
import type { TokenCipher } from './token-cipher.ts';
import {
  codePointLength,
  dateFinding,
  isProblem,
  type Problem,
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

/**
 * Unusual values that are imported as they were and counted, so the operator sees them
 * (the report and the dry run list them with the rejects' reasons).
 */
export type NoteKind =
  | 'empty_array'
  | 'sentinel_date'
  | 'old_date'
  | 'future_date'
  | 'empty_token'
  | 'tokens_not_imported'
  | 'empty_id'
  | 'unknown_client'
  | 'unknown_role'
  | 'role_not_id'
  | 'long_content'
  | 'negative_number';

/** Counted per table: a problem's kind counts a rejected row, a note an imported one. */
export type FindingKind = Problem['problem'] | NoteKind;
export type Findings = Partial<Record<FindingKind, number>>;

export const REJECT_KINDS: readonly Problem['problem'][] = [
  'unparseable_date',
  'out_of_range',
  'missing',
  'invalid_text',
  'orphan',
];

export function note(findings: Findings, kind: FindingKind): void {
  findings[kind] = (findings[kind] ?? 0) + 1;
}

/** Adds one row's notes to a batch's findings and empties them (a rejected row's are dropped). */
export function moveNotes(row: Findings, into: Findings | null): void {
  for (const k in row) {
    const kind = k as FindingKind;
    if (into) into[kind] = (into[kind] ?? 0) + (row[kind] ?? 0);
    delete row[kind];
  }
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
  /** Legacy columns of integer affinity besides id (they may hold integers past 2^53). */
  legacyInts: string[];
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
}

export type TableSpec = EventSpec | ReferenceSpec;

export interface ConvertContext {
  /** Legacy User ids that were rejected, so the Guilds pointing at them are orphans. */
  rejectedUsers: Set<string>;
  /** Legacy User ids present in the file. */
  userExists: (id: string) => boolean;
  /** When the import started (epoch ms): later dates are noted as future. */
  now: number;
  /** Encrypts the legacy OAuth tokens; without it they are not imported (stored as null). */
  tokens?: TokenCipher | null;
}

const text = (name: string, verify?: string): Column => ({ name, kind: 'text', pgType: 'text', verify });
const ntext = (name: string): Column => ({ name, kind: 'text', nullable: true, pgType: 'text' });

/** Runs each conversion step, stopping at the first problem. */
function collect(values: unknown[]): Converted {
  for (const v of values) if (isProblem(v)) return v;
  return values;
}

/** Legacy content longer than a live message may hold (CONTENT_MAX_CHARS) is kept and noted. */
const KNOWN_CLIENTS: ReadonlySet<string> = new Set(CLIENTS);
const SNOWFLAKE = /^[0-9]+$/;

function clients(value: unknown, findings: Findings): string[] | Problem {
  const list = splitList(value, 'clients');
  if (isProblem(list)) return list;
  if (list.length === 0) note(findings, 'empty_array');
  if (list.some((c) => !KNOWN_CLIENTS.has(c))) note(findings, 'unknown_client');
  return list;
}

function roles(value: unknown, findings: Findings): string[] | Problem {
  const list = splitList(value, 'addedRoles');
  if (isProblem(list)) return list;
  if (list.length === 0) note(findings, 'empty_array');
  if (list.some((r) => !SNOWFLAKE.test(r))) note(findings, 'role_not_id');
  return list;
}

function content(value: unknown, findings: Findings): string | Problem {
  const s = toText(value, 'content');
  if (isProblem(s)) return s;
  if (codePointLength(s, CONTENT_MAX_CHARS) > CONTENT_MAX_CHARS) note(findings, 'long_content');
  return s;
}

/** A Discord id of an event row: an empty one is kept and noted. */
function id(value: unknown, column: string, findings: Findings): string | Problem {
  const s = toText(value, column);
  if (s === '') note(findings, 'empty_id');
  return s;
}

/** A count or a delay: negative ones are kept and noted. */
function count(value: unknown, column: string, findings: Findings): number | Problem {
  const n = toInt32(value, column);
  if (typeof n === 'number' && n < 0) note(findings, 'negative_number');
  return n;
}

export const EVENT_SPECS: EventSpec[] = [
  {
    kind: 'event',
    legacy: 'PresenceEvent',
    legacyInts: ['createdAt'],
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
      collect([id(r.userId, 'userId', f), toText(r.username, 'username'), null, clients(r.clients, f)]),
  },
  {
    kind: 'event',
    legacy: 'TypingEvent',
    legacyInts: ['createdAt'],
    type: 'typing',
    target: 'typing_events',
    code: 2,
    keyType: 'int',
    legacyColumns: ['id', 'userId', 'username', 'channelId', 'channel', 'guildId', 'createdAt'],
    columns: [text('user_id'), text('username'), text('channel_id'), text('channel_name'), text('guild_id')],
    convert: (r, f) =>
      collect([
        id(r.userId, 'userId', f),
        toText(r.username, 'username'),
        toText(r.channelId, 'channelId'),
        toText(r.channel, 'channel'),
        toText(r.guildId, 'guildId'),
      ]),
  },
  {
    kind: 'event',
    legacy: 'MessageEvent',
    legacyInts: ['createdAt'],
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
    convert: (r, f) =>
      collect([
        id(r.userId, 'userId', f),
        toText(r.username, 'username'),
        toText(r.channelId, 'channelId'),
        toText(r.channel, 'channel'),
        toText(r.guildId, 'guildId'),
        content(r.content, f),
      ]),
  },
  {
    kind: 'event',
    legacy: 'JoinEvent',
    legacyInts: ['createdAt', 'accountAgeDays'],
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
    convert: (r, f) =>
      collect([
        id(r.userId, 'userId', f),
        toText(r.username, 'username'),
        toText(r.guildId, 'guildId'),
        count(r.accountAgeDays, 'accountAgeDays', f),
      ]),
  },
  {
    kind: 'event',
    legacy: 'DeletedMessageEvent',
    legacyInts: ['createdAt'],
    type: 'deleted_message',
    target: 'deleted_message_events',
    code: 5,
    keyType: 'int',
    legacyColumns: ['id', 'userId', 'username', 'channelId', 'channel', 'guildId', 'createdAt'],
    columns: [text('user_id'), text('username'), text('channel_id'), text('channel_name'), text('guild_id')],
    convert: (r, f) =>
      collect([
        id(r.userId, 'userId', f),
        toText(r.username, 'username'),
        toText(r.channelId, 'channelId'),
        toText(r.channel, 'channel'),
        toText(r.guildId, 'guildId'),
      ]),
  },
  {
    kind: 'event',
    legacy: 'ReactionTime',
    legacyInts: ['createdAt', 'deltaMs'],
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
    convert: (r, f) =>
      collect([
        id(r.observerId, 'observerId', f),
        toText(r.observerName, 'observerName'),
        id(r.actorId, 'actorId', f),
        toText(r.actorName, 'actorName'),
        toText(r.channelId, 'channelId'),
        toText(r.guildId, 'guildId'),
        count(r.deltaMs, 'deltaMs', f),
      ]),
  },
  {
    kind: 'event',
    legacy: 'RoleChangeEvent',
    legacyInts: ['createdAt'],
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
    convert: (r, f) =>
      collect([
        id(r.userId, 'userId', f),
        toText(r.username, 'username'),
        toText(r.guildId, 'guildId'),
        roles(r.addedRoles, f),
      ]),
  },
];

const ROLES = new Set(['USER', 'ADMIN', 'MODERATOR', 'BANNED']);
const legacyId: Column = { name: 'legacy_id', kind: 'text', pgType: 'text', verify: 'm.legacy_id' };
const uuidCol: Column = { name: 'id', kind: 'text', pgType: 'uuid', verify: false };
const ts = (name: string): Column => ({ name, kind: 'ts', pgType: 'timestamptz' });

/** A date of a reference row, with its finding (the epoch, before Discord, in the future). */
function refTs(value: unknown, column: string, findings: Findings, ctx: ConvertContext): number | Problem {
  const ms = toEpochMs(value, column);
  if (typeof ms === 'number') {
    const kind = dateFinding(ms, ctx.now);
    if (kind) note(findings, kind);
  }
  return ms;
}

function role(value: unknown, findings: Findings): string | Problem {
  const s = toText(value, 'role');
  if (typeof s === 'string' && !ROLES.has(s)) note(findings, 'unknown_role');
  return s;
}

/**
 * The legacy OAuth tokens (User.accessToken, User.refreshToken) on their way to
 * users.access_token and users.refresh_token: the one place the import reads them. They are
 * stored encrypted (ctx.tokens), or not at all (null, noted as tokens_not_imported) without a key.
 */
export const TOKEN_COLUMNS = ['access_token', 'refresh_token'] as const;

type Token = string | null | Problem;

function tokens(row: Row, findings: Findings, ctx: ConvertContext): [Token, Token] {
  const access = toText(row.accessToken, 'accessToken');
  const refresh = toText(row.refreshToken, 'refreshToken');
  if (typeof access !== 'string' || typeof refresh !== 'string') return [access, refresh];
  if (access === '' || refresh === '') note(findings, 'empty_token');
  if (!ctx.tokens) {
    note(findings, 'tokens_not_imported');
    return [null, null];
  }
  return [ctx.tokens.encrypt(access), ctx.tokens.encrypt(refresh)];
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
      ...TOKEN_COLUMNS.map((c) => ntext(c)),
      ts('refresh_token_issued_at'),
      ts('access_token_expires_at'),
      ts('last_seen_at'),
      text('role'),
      ts('created_at'),
      ts('updated_at'),
    ],
    convert: (r, f, ctx) =>
      collect([
        toText(r.id, 'id', { nonEmpty: true }),
        uuidv5(`User:${String(r.id)}`),
        toText(r.discordId, 'discordId', { nonEmpty: true }),
        toText(r.username, 'username'),
        toText(r.discriminator, 'discriminator'),
        toOptionalText(r.avatar, 'avatar'),
        toOptionalText(r.email, 'email'),
        toOptionalText(r.locale, 'locale'),
        toBool(r.verified, 'verified'),
        r.ipAddress === null || r.ipAddress === undefined ? null : toInet(r.ipAddress, 'ipAddress'),
        toOptionalText(r.userAgent, 'userAgent'),
        ...tokens(r, f, ctx),
        refTs(r.refreshTokenIssuedAt, 'refreshTokenIssuedAt', f, ctx),
        refTs(r.accessTokenExpiresAt, 'accessTokenExpiresAt', f, ctx),
        refTs(r.lastSeenAt, 'lastSeenAt', f, ctx),
        role(r.role, f),
        refTs(r.createdAt, 'createdAt', f, ctx),
        refTs(r.updatedAt, 'updatedAt', f, ctx),
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
        toText(r.guildId, 'guildId', { nonEmpty: true }),
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
    convert: (r, f, ctx) =>
      collect([
        String(r.id),
        uuidv5(`BlockedIP:${String(r.id)}`),
        toInet(r.ip, 'ip'),
        toOptionalText(r.reason, 'reason'),
        refTs(r.createdAt, 'createdAt', f, ctx),
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
    convert: (r, f, ctx) =>
      collect([
        String(r.id),
        uuidv5(`BannedUser:${String(r.id)}`),
        toText(r.userId, 'userId', { nonEmpty: true }),
        toText(r.username, 'username'),
        toOptionalText(r.reason, 'reason'),
        refTs(r.createdAt, 'createdAt', f, ctx),
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
  return toEpochMs(row.createdAt, 'createdAt');
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

const SAFE = Number.MAX_SAFE_INTEGER;

/** SQLite: true when a row of `spec` holds an integer that a JavaScript number cannot. */
export function unsafeIntSql(spec: EventSpec, alias: string): string {
  return spec.legacyInts
    .map((c) => `(typeof(${alias}"${c}") = 'integer' and ${alias}"${c}" not between ${-SAFE} and ${SAFE})`)
    .join(' or ');
}

/**
 * SQLite select list of an event table that reads such integers as their digits (node:sqlite
 * refuses to read them as numbers); the conversion then rejects them as out of range.
 */
export function safeColumnsSql(spec: EventSpec, alias: string): string {
  return spec.legacyColumns
    .map((c) =>
      spec.legacyInts.includes(c)
        ? `case when typeof(${alias}"${c}") = 'integer' and ${alias}"${c}" not between ${-SAFE} and ${SAFE} then cast(${alias}"${c}" as text) else ${alias}"${c}" end as "${c}"`
        : `${alias}"${c}"`,
    )
    .join(', ');
}
