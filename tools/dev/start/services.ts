import { type ChildProcess, spawn } from 'node:child_process';
import { StartFailure } from './failure.ts';
import { linePrefix, serviceLogEnv, showServiceOutput } from './service-output.ts';
import { SERVICES, type ServiceName } from './settings.ts';

export interface RunningServices {
  /** Resolves when all four answer /ready 200; rejects with a StartFailure naming the one that did not. */
  ready: Promise<void>;
  /** Sends SIGTERM (a graceful shutdown) to those still running and waits for them to exit. */
  stop: () => Promise<void>;
  /** Called with the service's name when one exits on its own after start-up. */
  onExit: (listener: (name: ServiceName, code: number | null, signal: string | null) => void) => void;
}

const READY_TIMEOUT_MS = 180_000;

/** /ready's answer; its detail (what fails and why) only with a token holding metrics:read. */
async function readyBody(port: number, token?: string): Promise<{ ok: boolean; failing?: string }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/ready`, {
      signal: AbortSignal.timeout(5000),
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    if (res.ok) return { ok: true };
    const body = (await res.json()) as { failing?: string[]; checks?: Record<string, { error?: string }> };
    if (!body.failing) return { ok: false, failing: 'not ready (the reason is in its log)' };
    return {
      ok: false,
      failing: body.failing.map((n) => `${n}: ${body.checks?.[n]?.error ?? 'failing'}`).join('; '),
    };
  } catch {
    return { ok: false };
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function waitReady(
  name: ServiceName,
  port: number,
  child: ChildProcess,
  stopping: () => boolean,
  token: string | undefined,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last: { ok: boolean; failing?: string } = { ok: false };
  while (Date.now() < deadline) {
    if (stopping()) return; // being stopped on purpose: nothing to report
    if (exited(child)) {
      throw new StartFailure(
        `${name} stopped before it was ready (exit ${child.signalCode ?? child.exitCode}).`,
        'Its message is above; fix what it names, then npm start again.',
      );
    }
    last = await readyBody(port, token);
    if (last.ok) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new StartFailure(
    `${name} is not ready after ${READY_TIMEOUT_MS / 1000} s${last.failing ? ` (its /ready says ${last.failing})` : ` (nothing answers on port ${port})`}.`,
    'Its log lines are above; fix what they name, then npm start again.',
  );
}

/** Starts the four services with `env` and waits (in `ready`) until each answers /ready. */
export function startServices(
  env: NodeJS.ProcessEnv,
  root: string,
  ports: Record<ServiceName, number>,
  /** A token with metrics:read (the development token), so a failing /ready says why. */
  readyToken?: string,
): RunningServices {
  const listeners: ((name: ServiceName, code: number | null, signal: string | null) => void)[] = [];
  let stopping = false;
  const terminal = process.stdout.isTTY === true;
  const children = SERVICES.map((s, i) => {
    const child = spawn(process.execPath, ['src/main.ts'], {
      cwd: `${root}/apps/${s.name}`,
      env: { ...env, ...serviceLogEnv(terminal), PORT: String(ports[s.name]) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    showServiceOutput(child, linePrefix(s.name, i, 8, terminal), terminal);
    child.on('exit', (code, signal) => {
      if (!stopping) for (const l of listeners) l(s.name, code, signal);
    });
    return { name: s.name, child };
  });
  return {
    ready: Promise.all(
      children.map(({ name, child }) => waitReady(name, ports[name], child, () => stopping, readyToken)),
    ).then(() => {}),
    stop: async () => {
      stopping = true;
      await Promise.all(
        children.map(
          ({ child }) =>
            new Promise<void>((resolve) => {
              if (exited(child)) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGTERM');
            }),
        ),
      );
    },
    onExit: (listener) => void listeners.push(listener),
  };
}
