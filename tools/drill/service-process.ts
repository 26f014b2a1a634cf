import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@spywatcher/testing/ports';

const root = fileURLToPath(new URL('../..', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every 50 ms until it returns a value (errors count as "not yet"). */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  ms = 60_000,
): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A service process (apps/<name>/src/main.ts) on a port of its own. */
export interface ServiceProcess {
  url: string;
  child: ChildProcess;
  output: () => string;
  /** True when it ended without being asked to (a crash). */
  crashed: () => boolean;
  /** Resolves once /ready answers 200; fails if the process ends first. */
  ready: () => Promise<void>;
  kill9: () => Promise<void>;
  stop: () => Promise<void>;
}

export interface ServiceProcessOptions {
  /** Where it listens (a restarted instance keeps its address). */
  port: number;
  /** Also writes its whole output to `<logDir>/<name>-<port>-<pid>.log`, to read after a failed drill. */
  logDir?: string;
  /** Called when it ends without being asked to (not after kill9 or stop). */
  onCrash?: (exit: { code: number | null; signal: NodeJS.Signals | null; output: string }) => void;
}

export type ServiceName = 'ingest' | 'search' | 'ops' | 'migrator';

/**
 * Spawns `node apps/<name>/src/main.ts` as a drill would run it in production: its own process,
 * one token with every scope, warnings only (`env` may say otherwise). Returns at once.
 */
export function spawnServiceProcess(
  name: ServiceName,
  token: string,
  env: Record<string, string>,
  children: ChildProcess[],
  options: ServiceProcessOptions,
): ServiceProcess {
  const { port } = options;
  let output = '';
  let stopping = false;
  const child = spawn(process.execPath, [join(root, 'apps', name, 'src', 'main.ts')], {
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      AUTH_TOKENS: JSON.stringify([{ name: 'drill', token, scopes: ['*'] }]),
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const file = options.logDir
    ? createWriteStream(join(options.logDir, `${name}-${port}-${child.pid}.log`))
    : undefined;
  const keep = (d: Buffer) => {
    output = (output + d).slice(-20_000);
    file?.write(d);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('exit', (code, signal) => {
    file?.end();
    if (!stopping) options.onCrash?.({ code, signal, output });
  });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  const ended = () => child.exitCode !== null || child.signalCode !== null;
  return {
    url,
    child,
    output: () => output,
    crashed: () => ended() && !stopping,
    ready: async () => {
      await waitUntil(
        `${name} to be ready`,
        async () => {
          if (ended()) throw new Error(`${name} exited: ${output}`);
          return (await fetch(`${url}/ready`)).ok ? true : undefined;
        },
        180_000,
      );
    },
    kill9: async () => {
      if (ended()) return;
      stopping = true;
      child.kill('SIGKILL');
      await once(child, 'exit');
    },
    stop: async () => {
      if (ended()) return;
      stopping = true;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await once(child, 'exit');
      clearTimeout(timer);
    },
  };
}

/** `spawnServiceProcess` on a free port; resolves once /ready answers 200. */
export async function startServiceProcess(
  name: ServiceName,
  token: string,
  env: Record<string, string>,
  children: ChildProcess[],
): Promise<ServiceProcess> {
  const service = spawnServiceProcess(name, token, env, children, { port: await freePort() });
  await service.ready();
  return service;
}
