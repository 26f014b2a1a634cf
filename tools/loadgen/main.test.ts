import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { testNatsNames } from '@spywatcher/testing';
import { startNatsServer } from '@spywatcher/testing/nats-server';
import { describe, expect, it } from 'vitest';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

function run(args: string[]) {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  return { child, stderr: () => stderr };
}

describe('loadgen', () => {
  it('prints every --ndjson line to a slow pipe before it exits', async () => {
    const { child } = run(['--ndjson', '--count', '5000', '--seed', '3']);
    let text = '';
    // A reader slower than the writer: stdout fills up and must be waited for.
    child.stdout!.on('data', (d) => {
      text += d;
      child.stdout!.pause();
      setTimeout(() => child.stdout!.resume(), 2);
    });
    // 'close' comes after stdout has ended, so every line is in `text` by then.
    const [code] = await once(child, 'close');
    expect(code).toBe(0);
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(5000);
    expect(JSON.parse(lines[4999]!)).toHaveProperty('id');
  }, 120_000);

  it('rides out a NATS outage longer than the default reconnect budget and ends with its summary', async () => {
    const nats = await startNatsServer();
    const names = testNatsNames('lg');
    try {
      const { child, stderr } = run([
        '--nats',
        nats.url,
        '--prefix',
        names.prefix,
        '--stream',
        names.stream,
        '--ensure-stream',
        '--count',
        '2000',
        '--rate',
        '400',
      ]);
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
      });
      // Cut NATS once publishing is under way (starting a process takes a while on a busy machine).
      const watcher = await connect({ servers: nats.url });
      const jsm = await jetstreamManager(watcher);
      for (let i = 0; i < 600; i++) {
        const n = await jsm.streams
          .info(names.stream)
          .then((x) => x.state.messages)
          .catch(() => 0);
        if (n >= 200) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await watcher.close();
      await nats.kill();
      // Ten reconnect attempts of 500 ms would have given up after ~5 s.
      await new Promise((r) => setTimeout(r, 8000));
      await nats.start();
      const [code] = await once(child, 'exit');
      const summary = JSON.parse(out.trim().split('\n').pop()!);
      expect(summary, stderr()).toMatchObject({ events: 2000, failed: 0, unknown: 0 });
      expect(code).toBe(0);
      const nc = await connect({ servers: nats.url });
      try {
        const info = await (await jetstreamManager(nc)).streams.info(names.stream);
        expect(info.state.messages).toBe(2000);
      } finally {
        await nc.close();
      }
    } finally {
      await nats.stop();
    }
  }, 180_000);
});
