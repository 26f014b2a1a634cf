import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, relative } from 'node:path';
import { freePort, portOpen } from './ports.ts';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The nats-server binary: NATS_SERVER_BIN, else `nats-server` on PATH or in the sbin folders
 * Debian's package installs it to (not on every user's PATH). Undefined when there is none.
 */
export function findNatsServer(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.NATS_SERVER_BIN) return executable(env.NATS_SERVER_BIN) ? env.NATS_SERVER_BIN : undefined;
  const dirs = [...(env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'].filter(Boolean);
  return dirs.map((dir) => join(dir, 'nats-server')).find(executable);
}

export interface NatsServerOptions {
  /** Default: a free port. */
  port?: number;
  /** JetStream store; default: a temporary folder removed by stop(). */
  storeDir?: string;
  /** Default: findNatsServer(). */
  bin?: string;
  /** nats-server's own log file; its last lines explain a failed start. */
  logFile?: string;
  /**
   * Configuration files to include (e.g. infra/nats/authorization.conf): the server then runs
   * from a generated config file holding the port, the store and these includes.
   */
  include?: string[];
  /** Environment of nats-server, e.g. the passwords an included file refers to. */
  env?: Record<string, string>;
  /**
   * Start from this config file instead of command-line flags; `env` fills its `$VARIABLES`
   * (NATS_STORE_DIR is set to the store), and it must make the server listen on `port`.
   */
  config?: { file: string; env: Record<string, string> };
}

/** A config file in `storeDir` with the listen address, the JetStream store and the includes. */
function writeConfig(storeDir: string, port: number, include: string[]): string {
  const file = join(storeDir, 'nats-server.conf');
  const lines = [
    `listen: "127.0.0.1:${port}"`,
    `jetstream { store_dir: ${JSON.stringify(join(storeDir, 'js'))} }`,
    // nats-server resolves includes relative to the including file only
    ...include.map((path) => `include ${JSON.stringify(relative(storeDir, path))}`),
  ];
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

export interface NatsServer {
  url: string;
  port: number;
  /** Starts it again (same port, same store) after kill(). */
  start: () => Promise<void>;
  /** SIGKILL, to simulate a crash. */
  kill: () => Promise<void>;
  /** SIGTERM (a clean shutdown), then removes a temporary store. */
  stop: () => Promise<void>;
}

function lastLines(file: string | undefined, n = 3): string {
  if (!file) return '';
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/**
 * A private nats-server with JetStream, listening on 127.0.0.1 only. It runs in its own process
 * group, so a Ctrl-C meant for the services does not stop it before they have drained.
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const bin = options.bin ?? findNatsServer();
  if (!bin) throw new Error('no nats-server binary (set NATS_SERVER_BIN or put nats-server on PATH)');
  const port = options.port ?? (await freePort());
  const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), 'sw-nats-'));
  const args = options.config
    ? ['-c', options.config.file]
    : options.include
      ? ['-c', writeConfig(storeDir, port, options.include)]
      : ['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port)];
  const env = {
    ...process.env,
    ...options.env,
    ...(options.config ? { ...options.config.env, NATS_STORE_DIR: storeDir } : {}),
  };
  if (options.logFile) args.push('-l', options.logFile);
  let child: ChildProcess | undefined;

  const start = async () => {
    if (child && child.exitCode === null) return; // already running: never start a second one
    // a config error is printed on stderr before any log file is opened
    const stdio = options.config || options.include ? (['ignore', 'ignore', 'pipe'] as const) : 'ignore';
    const c = spawn(bin, args, { stdio: stdio as 'ignore', detached: true, env });
    child = c;
    let stderr = '';
    c.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2000);
    });
    const failed = new Promise<string>((resolve) => {
      c.once('error', (error) => resolve(error.message));
      c.once('exit', (code, signal) => resolve(`exited with ${signal ?? code}`));
    });
    const until = Date.now() + 10_000;
    let why: string | undefined;
    void failed.then((w) => {
      why = w;
    });
    while (!(await portOpen(port))) {
      if (why !== undefined || Date.now() > until) {
        await stopChild(c, 'SIGKILL');
        const detail = stderr.trim() || lastLines(options.logFile);
        throw new Error(
          `nats-server (${bin}) did not start on 127.0.0.1:${port}: ${why ?? 'not listening after 10 s'}${detail ? `\n${detail}` : ''}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  // If this process ends without stop() (a crash, a killed worker), take the server along.
  const onExit = () => child?.kill('SIGKILL');
  process.once('exit', onExit);
  try {
    await start();
  } catch (error) {
    process.off('exit', onExit);
    if (!options.storeDir) rmSync(storeDir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    start,
    kill: async () => {
      const c = child;
      child = undefined;
      await stopChild(c, 'SIGKILL');
    },
    stop: async () => {
      process.off('exit', onExit);
      const c = child;
      child = undefined;
      await stopChild(c, 'SIGTERM');
      if (!options.storeDir) rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
