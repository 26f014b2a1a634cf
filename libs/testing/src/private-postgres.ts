import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';

const run = promisify(execFile);

export interface PrivatePostgres {
  /** postgres:// URL of the cluster's `postgres` database (trust auth, 127.0.0.1 only). */
  url: string;
  port: number;
  /** Stops the server (fast shutdown: sessions are cut), keeping its data. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** Stops it and removes its data folder. */
  close(): Promise<void>;
}

/** PostgreSQL refuses to run as root: then its binaries run as the system's `postgres` user. */
export async function runAs(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    throw new Error('PostgreSQL does not run as root and there is no "postgres" user to run it as');
  }
}

/**
 * A PostgreSQL cluster of its own (initdb + pg_ctl from PATH, PG_BIN_DIR to choose another) on a
 * free port with its data under /tmp, for tests that stop and start the database: never the
 * shared server.
 */
export async function startPrivatePostgres(env: NodeJS.ProcessEnv = process.env): Promise<PrivatePostgres> {
  const bin = (name: string) => (env.PG_BIN_DIR ? join(env.PG_BIN_DIR, name) : name);
  const as = await runAs();
  const root = mkdtempSync(join(tmpdir(), 'spywatcher-pg-'));
  const dataDir = join(root, 'data');
  if (as) chownSync(root, as.uid, as.gid);
  await run(bin('initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync'], as ?? {});
  const port = await freePort();
  const options = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const pgCtl = (args: string[]) => run(bin('pg_ctl'), ['-D', dataDir, ...args], as ?? {});
  const start = async () => {
    await pgCtl(['start', '-w', '-t', '60', '-l', join(root, 'log'), '-o', options]);
  };
  const stop = async () => {
    await pgCtl(['stop', '-m', 'fast', '-w', '-t', '60']);
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop,
    async close() {
      await stop().catch(() => {});
      rmSync(root, { recursive: true, force: true });
    },
  };
}
