import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

const COLOURS = [36, 35, 33, 32, 34, 31]; // cyan, magenta, yellow, green, blue, red

/**
 * Environment for a service `npm start` runs: on a terminal its logs are readable pino-pretty
 * lines in colour (the service writes into a pipe, so it is told); elsewhere JSON, as in production.
 */
export function serviceLogEnv(terminal: boolean): Record<string, string> {
  return terminal ? { LOG_FORMAT: 'pretty', FORCE_COLOR: '1' } : {};
}

/** `name │ ` padded to `width`, coloured on a terminal: the prefix of each line of a service. */
export function linePrefix(name: string, index: number, width: number, terminal: boolean): string {
  const label = `${name.padEnd(width)} │ `;
  return terminal ? `\x1b[${COLOURS[index % COLOURS.length]}m${label}\x1b[0m` : label;
}

function prefixLines(from: Readable, to: Writable, prefix: string): void {
  createInterface({ input: from, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
    to.write(`${prefix}${line}\n`);
  });
}

/**
 * Copies a child's stdout and stderr line by line, each line behind the service's prefix on a
 * terminal. Into a pipe or a file the JSON lines pass unchanged (each names its service).
 */
export function showServiceOutput(
  child: ChildProcess,
  prefix: string,
  terminal: boolean,
  out: Writable = process.stdout,
  err: Writable = process.stderr,
): void {
  if (!child.stdout || !child.stderr)
    throw new Error('spawn the service with stdio pipes to show its output');
  if (!terminal) {
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(err, { end: false });
    return;
  }
  prefixLines(child.stdout, out, prefix);
  prefixLines(child.stderr, err, prefix);
}
