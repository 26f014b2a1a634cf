import { execFile } from 'node:child_process';
import { appendFile, chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';
import { runAs } from './private-postgres.ts';

const run = promisify(execFile);

/**
 * Private PostgreSQL servers for replication tests and drills: a primary made by initdb and a hot
 * standby cloned from it by `pg_basebackup -R`, each in its own folder on a free loopback port,
 * started with pg_ctl and stopped by the PID in its postmaster.pid. The shared server is never
 * touched. As root, the binaries run as the system's `postgres` user (PostgreSQL refuses root).
 */
export interface PgServer {
  /** postgres://postgres@127.0.0.1:<port>/postgres (trust authentication on loopback). */
  url: string;
  port: number;
  dataDir: string;
  /** The postmaster's PID, from postmaster.pid. */
  pid: () => Promise<number>;
  /** Fast shutdown by PID (SIGINT); waits until the process is gone. */
  stop: () => Promise<void>;
  /** stop(), then removes the folder. */
  destroy: () => Promise<void>;
}

export interface PgReplica extends PgServer {
  /** Ends recovery: the standby becomes a writable primary (pg_ctl promote, waits until done). */
  promote: () => Promise<void>;
}

interface Runner {
  bin: (name: string) => string;
  as: { uid?: number; gid?: number };
}

/** Where the PostgreSQL binaries are: PG_BIN_DIR, else `pg_config --bindir`, else PATH. */
async function binDir(): Promise<string | undefined> {
  if (process.env.PG_BIN_DIR) return process.env.PG_BIN_DIR;
  try {
    return (await run('pg_config', ['--bindir'])).stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

async function runner(): Promise<Runner> {
  const dir = await binDir();
  const bin = (name: string) => (dir ? join(dir, name) : name);
  return { bin, as: (await runAs()) ?? {} };
}

async function exec(r: Runner, name: string, args: string[]): Promise<string> {
  try {
    return (await run(r.bin(name), args, { ...r.as, env: { ...process.env, LC_ALL: 'C' } })).stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    const detail = (e.stderr || e.message).trim().split('\n').slice(-3).join(' | ');
    throw new Error(`${name} ${args[0] ?? ''} failed: ${detail}`);
  }
}

/** A folder the server's user owns (mode 0700, as PostgreSQL requires). */
async function ownedDir(r: Runner, dir: string | undefined, label: string): Promise<string> {
  const path = dir ?? (await mkdtemp(join(tmpdir(), `sw-pg-${label}-`)));
  await mkdir(path, { recursive: true, mode: 0o700 });
  if (r.as.uid !== undefined) await chown(path, r.as.uid, r.as.gid!);
  return path;
}

async function postmasterPid(dataDir: string): Promise<number> {
  const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8');
  const pid = Number(text.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no PID in ${join(dataDir, 'postmaster.pid')}`);
  return pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopByPid(dataDir: string): Promise<void> {
  let pid: number;
  try {
    pid = await postmasterPid(dataDir);
  } catch {
    return; // not running
  }
  if (!alive(pid)) return;
  process.kill(pid, 'SIGINT');
  const until = Date.now() + 60_000;
  while (alive(pid)) {
    if (Date.now() > until) {
      process.kill(pid, 'SIGQUIT');
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startServer(r: Runner, dataDir: string): Promise<void> {
  // pg_ctl returns once the server accepts connections; the server lives on in its own session.
  await exec(r, 'pg_ctl', ['start', '-D', dataDir, '-w', '-t', '120', '-l', join(dataDir, 'server.log')]);
}

/** A server a previous run started in `dataDir` (stop or promote it by its folder). */
export function attachServer(dataDir: string): PgReplica {
  return {
    ...server(dataDir, 0),
    promote: async () => {
      await exec(await runner(), 'pg_ctl', ['promote', '-D', dataDir, '-w', '-t', '60']);
    },
  };
}

function server(dataDir: string, port: number): PgServer {
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    pid: () => postmasterPid(dataDir),
    stop: () => stopByPid(dataDir),
    destroy: async () => {
      await stopByPid(dataDir);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Settings both servers share: loopback only, no Unix socket (no clash with the shared server). */
const commonSettings = (port: number) => `
# tools/replica (libs/testing/src/postgres-replica.ts)
port = ${port}
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
`;

/**
 * initdb a new cluster in `dataDir` (default a temporary folder) and start it on `port`
 * (default a free one) with what streaming replication needs: wal_level=replica, WAL senders,
 * and a pg_hba line letting loopback connect for replication.
 */
export async function startPrimary(options: { dataDir?: string; port?: number } = {}): Promise<PgServer> {
  const r = await runner();
  const port = options.port ?? (await freePort());
  const dataDir = await ownedDir(r, options.dataDir, 'primary');
  await exec(r, 'initdb', [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--auth=trust',
    '--encoding=UTF8',
    '--no-locale',
  ]);
  await appendFile(
    join(dataDir, 'postgresql.conf'),
    `${commonSettings(port)}wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '256MB'
shared_preload_libraries = 'pg_stat_statements'
`,
  );
  await appendFile(join(dataDir, 'pg_hba.conf'), 'host replication all 127.0.0.1/32 trust\n');
  await startServer(r, dataDir);
  return server(dataDir, port);
}

/**
 * Clones the server at `primaryUrl` into `dataDir` with `pg_basebackup -R -X stream` (a physical
 * replication slot named `slot` keeps the WAL it still needs) and starts it as a hot standby on
 * `port`. The primary needs wal_level=replica and a pg_hba replication entry for this host.
 */
export async function startReplica(options: {
  primaryUrl: string;
  dataDir?: string;
  port?: number;
  slot?: string;
}): Promise<PgReplica> {
  const r = await runner();
  const port = options.port ?? (await freePort());
  const dataDir = await ownedDir(r, options.dataDir, 'replica');
  const primary = new URL(options.primaryUrl);
  const slot = options.slot ?? `replica_${port}`;
  await exec(r, 'pg_basebackup', [
    '-h',
    primary.hostname,
    '-p',
    primary.port || '5432',
    '-U',
    decodeURIComponent(primary.username) || 'postgres',
    '-D',
    dataDir,
    '-R',
    '-X',
    'stream',
    '-c',
    'fast',
    '-C',
    '-S',
    slot,
  ]);
  await appendFile(
    join(dataDir, 'postgresql.conf'),
    `${commonSettings(port)}hot_standby = on
hot_standby_feedback = on
`,
  );
  await startServer(r, dataDir);
  return { ...attachServer(dataDir), ...server(dataDir, port) };
}
