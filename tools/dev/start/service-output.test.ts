import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { linePrefix, serviceLogEnv, showServiceOutput } from './service-output.ts';

const migratorMain = fileURLToPath(new URL('../../../apps/migrator/src/main.ts', import.meta.url));
const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

function collect() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d) => {
    text += d;
  });
  return { stream, text: () => text };
}

async function runMigrator(terminal: boolean) {
  const out = collect();
  const child = spawn(process.execPath, [migratorMain], {
    env: {
      ...process.env,
      ...serviceLogEnv(terminal),
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      AUTH_TOKENS: '[]',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  showServiceOutput(child, linePrefix('migrator', 2, 8, terminal), terminal, out.stream, out.stream);
  const exited = once(child, 'exit');
  const deadline = Date.now() + 30_000;
  while (!/Server listening/.test(out.text()) && Date.now() < deadline && child.exitCode === null) {
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGTERM');
  await exited;
  await new Promise((r) => setImmediate(r));
  return out.text();
}

describe('npm start output', () => {
  it('on a terminal: each line of a service behind its coloured prefix, as a readable pino-pretty line', async () => {
    const text = await runMigrator(true);
    const lines = text.trimEnd().split('\n');
    expect(strip(text)).toContain('Server listening');
    for (const line of lines) {
      expect(line.startsWith('\x1b[33mmigrator │ \x1b[0m'), line).toBe(true);
      expect(strip(line), line).toMatch(/^migrator │ \[\d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN|ERROR): /);
    }
    expect(lines.some((l) => l.includes('\x1b[32mINFO'))).toBe(true);
  }, 60_000);

  it('into a pipe: the JSON lines of production, unchanged', async () => {
    const text = await runMigrator(false);
    const lines = text.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines) expect((JSON.parse(line) as { name: string }).name).toBe('migrator');
  }, 60_000);
});
