import { execFileSync } from 'node:child_process';

/** Path of a binary of Debian's `prometheus` package, or an error saying how to get it. */
function binary(name: 'prometheus' | 'promtool'): string {
  const path = process.env[`${name.toUpperCase()}_PATH`] ?? name;
  try {
    execFileSync(path, ['--version'], { stdio: 'ignore' });
    return path;
  } catch {
    throw new Error(
      `${name} not found: install Debian's prometheus package (apt-get install prometheus; .ci/run does) or set ${name.toUpperCase()}_PATH`,
    );
  }
}

export const promtool = () => binary('promtool');
export const prometheusBinary = () => binary('prometheus');
