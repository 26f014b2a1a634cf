/**
 * A start-up failure told to a person: what is missing or wrong (with what was tried), and
 * what to run. start-all prints these lines and nothing else — no stack trace.
 */
export class StartFailure extends Error {
  readonly hint: string;
  constructor(what: string, hint: string) {
    super(what);
    this.name = 'StartFailure';
    this.hint = hint;
  }
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'CONNECT_TIMEOUT',
]);

/** True when nothing answered at all (as opposed to a server that answered with an error). */
export function isUnreachable(error: unknown): boolean {
  const e = error as { code?: string; cause?: { code?: string }; message?: string };
  return (
    UNREACHABLE.has(e.code ?? '') ||
    UNREACHABLE.has(e.cause?.code ?? '') ||
    /connection refused|timed? ?out/i.test(e.message ?? '')
  );
}

/** One short phrase for an error from postgres.js, nats.js or Node's sockets. */
export function reasonOf(error: unknown): string {
  const e = error as { code?: string; message?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'unknown host';
  if (code === 'ETIMEDOUT' || code === 'CONNECT_TIMEOUT') return 'no answer (timed out)';
  return (e.message ?? String(error)).split('\n')[0]!;
}
