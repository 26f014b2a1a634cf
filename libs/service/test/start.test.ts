import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { collectOutput, createTestDatabase, type TestDatabase, testNatsUrl } from '@spywatcher/testing';
import { type NatsServer, startNatsServer } from '@spywatcher/testing/nats-server';
import { freePort } from '@spywatcher/testing/ports';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const main = fileURLToPath(new URL('./fixtures/plain-main.ts', import.meta.url));

async function until<T>(what: string, probe: () => Promise<T | undefined>, output: () => string): Promise<T> {
  const deadline = Date.now() + 45_000;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not happen:\n${output()}`);
}

const MONITOR_TOKEN = 'monitor-token-0123456789';

async function ready(port: number): Promise<{ status: number; body: Record<string, unknown> } | undefined> {
  try {
    // The check detail is for metrics:read tokens; a stranger sees only the status.
    const res = await fetch(`http://127.0.0.1:${port}/ready`, {
      headers: { authorization: `Bearer ${MONITOR_TOKEN}` },
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } catch {
    return undefined; // not listening
  }
}

describe('a service whose NATS is not there yet', () => {
  let db: TestDatabase;
  let nats: NatsServer | undefined;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await nats?.stop();
    await db.drop();
  });

  it('says so in its log, answers /ready 503 naming nats, and becomes ready once NATS starts', async () => {
    const [httpPort, natsPort] = [await freePort(), await freePort()];
    const natsUrl = `nats://127.0.0.1:${natsPort}`;
    child = spawn(process.execPath, [main], {
      env: {
        PATH: process.env.PATH,
        DATABASE_URL: db.url,
        NATS_URL: natsUrl,
        PORT: String(httpPort),
        LOG_LEVEL: 'info',
        AUTH_TOKENS: JSON.stringify([{ name: 'monitor', token: MONITOR_TOKEN, scopes: ['metrics:read'] }]),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = collectOutput(child);

    await until(
      'the warning',
      async () => (output().includes('cannot reach NATS') ? true : undefined),
      output,
    );
    expect(output()).toContain(`cannot reach NATS at ${natsUrl}: connection refused`);
    expect(output()).toContain('set NATS_URL');

    const waiting = await until('a /ready answer', () => ready(httpPort), output);
    expect(waiting.status).toBe(503);
    expect(waiting.body.failing).toEqual(['nats']);
    const checks = waiting.body.checks as Record<string, { ok: boolean; error?: string }>;
    expect(checks.postgres?.ok).toBe(true);
    expect(checks.nats?.error).toContain(`cannot reach NATS at ${natsUrl}`);

    nats = await startNatsServer({ port: natsPort });
    const served = await until(
      '/ready 200',
      async () => {
        const r = await ready(httpPort);
        return r?.status === 200 ? r : undefined;
      },
      output,
    );
    expect(Object.keys(served.body.checks as object).sort()).toEqual(['nats', 'postgres']);
    expect(output()).toContain('connected to NATS');

    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    expect(await exited, output()).toEqual([0, null]);
  });
});

describe('a service that cannot start', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  it('exits 1 with one line naming the port in use, no stack trace', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as { port: number }).port;
    try {
      const child = spawn(process.execPath, [main], {
        env: { PATH: process.env.PATH, DATABASE_URL: db.url, NATS_URL: testNatsUrl(), PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (d) => {
        stderr += d;
      });
      const [code] = await once(child, 'exit');
      expect(code).toBe(1);
      expect(stderr).toBe(
        `plain: cannot listen on 127.0.0.1:${port}: the port is in use (set PORT to a free one)\n`,
      );
    } finally {
      taken.close();
    }
  });
});
