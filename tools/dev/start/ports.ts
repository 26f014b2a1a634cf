import { freePort, portOpen } from '@spywatcher/testing/ports';

/**
 * The port a server npm start runs itself listens on: the probed URL's port when it is on this
 * machine and free (so the next run, and a person's psql, find it where expected), else any free one.
 */
export async function preferredPort(probeUrl: string, defaultPort: number): Promise<number> {
  const { hostname, port } = new URL(probeUrl);
  const wanted = Number(port || defaultPort);
  const here = ['127.0.0.1', 'localhost'].includes(hostname);
  return here && !(await portOpen(wanted)) ? wanted : freePort();
}
