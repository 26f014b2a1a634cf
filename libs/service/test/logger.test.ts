import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, wantsPretty } from '../src/logger.ts';

function capture(isTTY: boolean) {
  const stream = Object.assign(new PassThrough(), { isTTY });
  let text = '';
  stream.on('data', (d) => {
    text += d;
  });
  return { stream, text: () => text };
}

describe('createLogger', () => {
  it('writes one JSON object a line when stdout is not a terminal', () => {
    const out = capture(false);
    const log = createLogger({ name: 'ingest', level: 'info', destination: out.stream, env: {} });
    log.info({ token: 'secret-token-value', batch: 3 }, 'stored batch');
    const line = JSON.parse(out.text().trim()) as Record<string, unknown>;
    expect(line).toMatchObject({
      name: 'ingest',
      msg: 'stored batch',
      batch: 3,
      token: '[Redacted]',
      level: 30,
    });
  });

  it('writes readable single lines on a terminal, redacted the same way', () => {
    const out = capture(true);
    const log = createLogger({ name: 'ingest', level: 'info', destination: out.stream, env: {} });
    log.info({ token: 'secret-token-value', batch: 3, nested: { a: 1 } }, 'stored batch');
    log.warn('slow append');
    const lines = out
      .text()
      .replace(/\x1b\[[0-9;]*m/g, '')
      .trim()
      .split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: stored batch /);
    expect(lines[0]).toContain('"batch":3');
    expect(lines[0]).toContain('"token":"[Redacted]"');
    expect(lines[0]).not.toContain('secret-token-value');
    expect(lines[1]).toMatch(/WARN: slow append/);
    expect(out.text()).toMatch(/\x1b\[/); // coloured on a terminal
  });

  it('LOG_FORMAT overrides what the terminal suggests', () => {
    const json = capture(true);
    createLogger({ name: 's', level: 'info', format: 'json', destination: json.stream, env: {} }).info('x');
    expect(() => JSON.parse(json.text())).not.toThrow();
    const pretty = capture(false);
    createLogger({ name: 's', level: 'info', format: 'pretty', destination: pretty.stream, env: {} }).info(
      'x',
    );
    expect(pretty.text()).toMatch(/INFO: x/);
    expect(pretty.text()).not.toMatch(/\x1b\[/); // no colour into a pipe
  });

  it('auto is JSON in production even on a terminal', () => {
    expect(wantsPretty('auto', { isTTY: true }, { NODE_ENV: 'production' })).toBe(false);
    expect(wantsPretty('auto', { isTTY: true }, {})).toBe(true);
    expect(wantsPretty('auto', { isTTY: false }, {})).toBe(false);
    expect(wantsPretty('pretty', { isTTY: false }, { NODE_ENV: 'production' })).toBe(true);
  });
});
