-- Reference data (not event-sourced), mirroring SpyWatcher's PostgreSQL schema.
create type user_role as enum ('USER', 'ADMIN', 'MODERATOR', 'BANNED');

create table users (
  id uuid primary key default gen_random_uuid(),
  discord_id text not null unique check (discord_id <> ''),
  username text not null,
  discriminator text not null default '0',
  avatar text,
  email text,
  locale text,
  verified boolean not null default false,
  ip_address inet,
  user_agent text,
  access_token text not null,
  refresh_token text not null,
  refresh_token_issued_at timestamptz not null default now(),
  access_token_expires_at timestamptz not null,
  last_seen_at timestamptz not null default now(),
  role user_role not null default 'USER',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table guilds (
  id uuid primary key default gen_random_uuid(),
  guild_id text not null unique check (guild_id <> ''),
  name text not null,
  icon text,
  owner boolean not null default false,
  -- Discord permission bit sets exceed 32 bits.
  permissions bigint not null default 0,
  user_id uuid not null references users (id) on delete cascade
);
create index guilds_user_id_idx on guilds (user_id);

create table blocked_ips (
  id uuid primary key default gen_random_uuid(),
  ip inet not null unique,
  reason text,
  created_at timestamptz not null default now()
);

create table banned_users (
  id uuid primary key default gen_random_uuid(),
  user_id text not null unique check (user_id <> ''),
  username text not null,
  reason text,
  created_at timestamptz not null default now()
);
