import type { ChildProcess } from 'node:child_process';

/** A process a test started, with what it printed, so a wait can fail with its output. */
export interface WatchedChild {
  name: string;
  child: ChildProcess;
  output: () => string;
}

/**
 * Polls `probe` until it returns a value; fails early, with its output, when one of `children`
 * exits, and after `ms` with the last error the probe threw.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  children: WatchedChild[] = [],
  ms = 150_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    for (const c of children) {
      if (c.child.exitCode !== null)
        throw new Error(`${c.name} exited with ${c.child.exitCode}:\n${c.output()}`);
    }
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
