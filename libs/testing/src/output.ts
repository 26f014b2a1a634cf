import type { ChildProcess } from 'node:child_process';

/** Collects a child's stdout and stderr (spawned with pipes) as one text, for assertions and failures. */
export function collectOutput(child: ChildProcess): () => string {
  let output = '';
  const append = (d: Buffer) => {
    output += d;
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  return () => output;
}
