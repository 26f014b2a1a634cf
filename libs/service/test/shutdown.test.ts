import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { buildService, createAuth, createMetricsRegistry, runService } from '../src/index.ts';

const logger = pino({ level: 'silent' });

async function slowApp() {
  let entered!: () => void;
  const inHandler = new Promise<void>((r) => {
    entered = r;
  });
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  const app = await buildService({
    name: 'shutdown-test',
    version: '0.0.0',
    description: 'graceful shutdown',
    metrics: createMetricsRegistry('shutdown-test'),
    auth: createAuth([]),
  });
  app.get('/slow', { config: { public: true } }, async () => {
    entered();
    await released;
    return { done: true };
  });
  return { app, inHandler, release };
}

describe('runService shutdown', () => {
  it('stops accepting, lets the in-flight request finish, then runs the closers in order and exits 0', async () => {
    const { app, inHandler, release } = await slowApp();
    const events: string[] = [];
    // Recorded by the server when the response is sent: the client's own callback may run after
    // the closers on a loaded machine, which says nothing about the order of the shutdown.
    app.addHook('onResponse', async (request) => {
      if (request.url === '/slow') events.push('response');
    });
    let exitCode: number | undefined;
    const { shutdown } = await runService({
      app,
      host: '127.0.0.1',
      port: 0,
      logger,
      shutdownTimeoutMs: 10_000,
      exit: (code) => {
        exitCode = code;
      },
      closers: [
        { name: 'background', close: async () => void events.push('background') },
        { name: 'nats', close: async () => void events.push('nats') },
        { name: 'postgres', close: async () => void events.push('postgres') },
      ],
    });
    const { port } = app.server.address() as AddressInfo;
    const inFlight = fetch(`http://127.0.0.1:${port}/slow`).then(async (r) => ({
      status: r.status,
      body: await r.json(),
    }));
    await inHandler;

    const stopping = shutdown('SIGTERM');
    // New connections are refused while the old request is still being served.
    await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
    expect(events).toEqual([]);

    release();
    await stopping;
    expect(await inFlight).toEqual({ status: 200, body: { done: true } });
    expect(events).toEqual(['response', 'background', 'nats', 'postgres']);
    expect(exitCode).toBe(0);
  });

  it('exits 1 when shutting down takes longer than the bound', async () => {
    const { app } = await slowApp();
    const exited = new Promise<number>((resolve) => {
      void runService({
        app,
        host: '127.0.0.1',
        port: 0,
        logger,
        shutdownTimeoutMs: 200,
        exit: resolve,
        closers: [{ name: 'stuck', close: () => new Promise(() => {}) }],
      }).then(({ shutdown }) => shutdown('SIGTERM'));
    });
    expect(await exited).toBe(1);
  });

  it('a failing closer makes the exit code 1 but the later closers still run', async () => {
    const { app } = await slowApp();
    const closed: string[] = [];
    let exitCode: number | undefined;
    const { shutdown } = await runService({
      app,
      host: '127.0.0.1',
      port: 0,
      logger,
      shutdownTimeoutMs: 10_000,
      exit: (code) => {
        exitCode = code;
      },
      closers: [
        {
          name: 'nats',
          close: async () => {
            throw new Error('drain failed');
          },
        },
        { name: 'postgres', close: async () => void closed.push('postgres') },
      ],
    });
    await shutdown('SIGTERM');
    expect(closed).toEqual(['postgres']);
    expect(exitCode).toBe(1);
  });
});
