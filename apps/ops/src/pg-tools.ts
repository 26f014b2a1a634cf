import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';

/**
 * libpq environment for a connection string. The client tools get host, user and password
 * from here rather than from their argument list, because argv is visible to every user of
 * the machine (ps, /proc) and the password must never be.
 */
export function pgEnv(url: string): { env: Record<string, string>; database: string; password: string } {
  const u = new URL(url);
  const env: Record<string, string> = {
    PGHOST: u.searchParams.get('host') ?? (u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1'),
    PGPORT: u.port || '5432',
    PGUSER: decodeURIComponent(u.username) || 'postgres',
    PGAPPNAME: 'spywatcher-ops',
  };
  const password = decodeURIComponent(u.password);
  if (password) env.PGPASSWORD = password;
  const sslmode = u.searchParams.get('sslmode');
  if (sslmode) env.PGSSLMODE = sslmode;
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres';
  return { env, database, password };
}

/** Removes passwords (the given ones and any in connection strings) from text meant for people. */
export function redactSecrets(text: string, secrets: string[] = []): string {
  let out = text.replace(/(postgres(?:ql)?:\/\/[^:/@\s]*:)[^@\s]*@/gi, '$1***@');
  out = out.replace(/(password\s*[=:]\s*)\S+/gi, '$1***');
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}

export class PgToolError extends Error {
  readonly exitCode: number | null;
  constructor(message: string, exitCode: number | null) {
    super(message);
    this.name = 'PgToolError';
    this.exitCode = exitCode;
  }
}

export interface RunToolOptions {
  /** Connection whose credentials go into the child's environment. */
  url: string;
  /**
   * Consumes stdout (pg_dump's archive); when absent stdout is discarded. If it fails (a full
   * disk), the tool is stopped and the sink's error is the one reported.
   */
  sink?: (stdout: Readable) => Promise<void>;
  onStderrLine?: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * Runs a PostgreSQL client tool with an argument list (never through a shell). On failure the
 * error carries the tool's own error lines, with passwords removed.
 */
export async function runPgTool(command: string, args: string[], options: RunToolOptions): Promise<void> {
  const { env, password } = pgEnv(options.url);
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', ...env },
    stdio: ['ignore', options.sink ? 'pipe' : 'ignore', 'pipe'],
    shell: false,
  });
  let killTimer: NodeJS.Timeout | undefined;
  const stopChild = () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    // a tool that ignores SIGTERM (stuck in I/O) is not waited for
    killTimer ??= setTimeout(() => child.kill('SIGKILL'), 2000);
    killTimer.unref();
  };
  const onAbort = () => stopChild();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) stopChild();
  const lines: string[] = [];
  let partial = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      options.onStderrLine?.(line);
      if (
        !/^\S+: (dumping|processing|creating|restoring|reading|identifying|finding|flagging|saving|last built-in|executing|connecting|launching|finished|implied|dropping|setting)/.test(
          line,
        )
      ) {
        lines.push(line);
        if (lines.length > 40) lines.shift();
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: Error }>(
    (resolve) => {
      child.once('error', (error) => resolve({ code: null, signal: null, spawnError: error }));
      child.once('close', (code, signal) => resolve({ code, signal }));
    },
  );
  const piping =
    options.sink && child.stdout
      ? options.sink(child.stdout).then(
          () => null,
          (error: Error) => {
            stopChild();
            child.stdout?.resume(); // drain what is left so the child can exit
            return error;
          },
        )
      : Promise.resolve(null);
  try {
    const [exit, piped] = await Promise.all([exited, piping]);
    if (partial) lines.push(partial);
    if (exit.spawnError) throw new PgToolError(`cannot run ${command}: ${exit.spawnError.message}`, null);
    if (options.signal?.aborted)
      throw new PgToolError(`${command} was stopped: the job was cancelled`, exit.code);
    if (piped) throw new PgToolError(`writing the output of ${command} failed: ${piped.message}`, exit.code);
    if (exit.signal) {
      throw new PgToolError(
        redactSecrets(
          `${command} was killed by ${exit.signal}${lines.length > 0 ? `: ${lines.slice(-3).join(' ').trim()}` : ''}`,
          [password],
        ),
        null,
      );
    }
    if (exit.code !== 0) {
      const errors = lines.filter((l) => /error|fatal|could not|failed|denied|does not exist/i.test(l));
      const detail = (errors.length > 0 ? errors : lines.slice(-5)).join('\n').trim();
      throw new PgToolError(
        redactSecrets(`${command} failed (exit ${exit.code ?? exit.signal}): ${detail || 'no message'}`, [
          password,
        ]),
        exit.code,
      );
    }
  } finally {
    clearTimeout(killTimer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}
