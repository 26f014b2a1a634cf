import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
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

/** A service process (apps/<name>/src/main.ts) on a free port. */
export interface ServiceProcess {
  url: string;
  child: ChildProcess;
  output: () => string;
  /** True when it ended without being asked to (a crash). */
  crashed: () => boolean;
  kill9: () => Promise<void>;
  stop: () => Promise<void>;
}

/**
 * Starts `node apps/<name>/src/main.ts` as a drill would run it in production: its own process,
 * a free port, one token with every scope, warnings only; resolves once /ready answers 200.
 */
export async function startServiceProcess(
  name: 'ingest' | 'search' | 'ops' | 'migrator',
  token: string,
  env: Record<string, string>,
  children: ChildProcess[],
): Promise<ServiceProcess> {
  const port = await freePort();
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
  const keep = (d: Buffer) => {
    output = (output + d).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(
    `${name} to be ready`,
    async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited: ${output}`);
      return (await fetch(`${url}/ready`)).ok ? true : undefined;
    },
    120_000,
  );
  const ended = () => child.exitCode !== null || child.signalCode !== null;
  return {
    url,
    child,
    output: () => output,
    crashed: () => ended() && !stopping,
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
