import { relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { StartFailure } from './failure.ts';

export const SERVICES = [
  { name: 'ingest', port: 3001 },
  { name: 'search', port: 3002 },
  { name: 'migrator', port: 3003 },
  { name: 'ops', port: 3004 },
] as const;
export type ServiceName = (typeof SERVICES)[number]['name'];

/** The database npm start uses on a server it finds or starts itself. */
export const DEFAULT_DATABASE = 'spywatcher';

export const USAGE = `usage: npm start [-- --fresh]

Starts ingest, search, migrator and ops, with PostgreSQL and NATS from, in this order:
DATABASE_URL / NATS_URL when set; the local servers when they answer; otherwise servers npm start
runs itself (Docker when an engine is available, else an embedded PostgreSQL and nats-server),
keeping their data in .data/.

  --fresh   start clean: empty the servers npm start runs (their folders in .data/), or on a
            local server drop and recreate its database

environment:
  DATABASE_URL, NATS_URL          use these servers (nothing else is tried)
  START_DATABASE                  database on a found or started server (default spywatcher)
  START_PROBE_DATABASE_URL        the local PostgreSQL to try (default postgres://postgres@127.0.0.1:5432/postgres)
  START_PROBE_NATS_URL            the local NATS to try (default nats://127.0.0.1:4222)
  START_DATA_DIR                  where started servers keep their data (default .data)
  START_DOCKER=false              do not use Docker even when an engine is available
  NATS_SERVER_BIN                 the nats-server binary (default: on PATH or in /usr/sbin)
  INGEST_PORT, SEARCH_PORT, MIGRATOR_PORT, OPS_PORT   HTTP ports (default 3001-3004)
  LOG_LEVEL                       the services' log level (default warn: their warnings and errors)`;

export interface StartSettings {
  fresh: boolean;
  help: boolean;
  /** DATABASE_URL / NATS_URL as the user set them: used as they are, nothing else tried. */
  databaseUrl?: string;
  natsUrl?: string;
  /** The local servers tried when those are not set. */
  probeDatabaseUrl: string;
  probeNatsUrl: string;
  database: string;
  dataDir: string;
  /** dataDir as a person reads it: relative when inside the repository. */
  dataDirShown: string;
  docker: boolean;
  ports: Record<ServiceName, number>;
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new StartFailure(
      `${name} must be a port number, got ${JSON.stringify(raw)}.`,
      `Fix ${name} or unset it.`,
    );
  }
  return n;
}

function url(env: NodeJS.ProcessEnv, name: string, fallback: string, schemes: string[]): string {
  const raw = env[name] || fallback;
  let scheme: string;
  try {
    scheme = new URL(raw).protocol.replace(/:$/, '');
  } catch {
    scheme = '';
  }
  if (!schemes.includes(scheme)) {
    throw new StartFailure(
      `${name} must be a ${schemes[0]}:// URL, got ${JSON.stringify(raw.replace(/:[^:@/]*@/, ':***@'))}.`,
      `Fix ${name} or unset it.`,
    );
  }
  return raw;
}

/** npm start's settings from its arguments and environment, checked before anything starts. */
export function readSettings(argv: string[], env: NodeJS.ProcessEnv, root: string): StartSettings {
  let values: { fresh?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { fresh: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (error) {
    throw new StartFailure((error as Error).message, 'Run npm start -- --help for the options.');
  }
  const dataDir = resolve(root, env.START_DATA_DIR || '.data');
  const inRepo = relative(root, dataDir);
  return {
    fresh: values.fresh ?? false,
    help: values.help ?? false,
    databaseUrl: env.DATABASE_URL ? url(env, 'DATABASE_URL', '', ['postgres', 'postgresql']) : undefined,
    natsUrl: env.NATS_URL || undefined,
    probeDatabaseUrl: url(env, 'START_PROBE_DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/postgres', [
      'postgres',
      'postgresql',
    ]),
    probeNatsUrl: url(env, 'START_PROBE_NATS_URL', 'nats://127.0.0.1:4222', ['nats']),
    database: env.START_DATABASE || DEFAULT_DATABASE,
    dataDir,
    dataDirShown: inRepo && !inRepo.startsWith('..') ? inRepo : dataDir,
    docker: env.START_DOCKER !== 'false',
    ports: Object.fromEntries(
      SERVICES.map((s) => [s.name, port(env, `${s.name.toUpperCase()}_PORT`, s.port)]),
    ) as Record<ServiceName, number>,
  };
}
