import { existsSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';

/** The images `npm test` and `npm start` run when they start PostgreSQL and NATS in Docker. */
export const POSTGRES_IMAGE = 'postgres:15';
export const NATS_IMAGE = 'nats:2.9';

export interface StartedContainer {
  url: string;
  stop: () => Promise<void>;
}

/**
 * Where testcontainers would find a Docker engine (its strategies: DOCKER_HOST or a
 * ~/.testcontainers.properties, then the usual sockets). Checked before importing
 * testcontainers, which alone takes seconds, so a machine without Docker answers at once.
 */
function dockerHinted(env: NodeJS.ProcessEnv): boolean {
  if (env.DOCKER_HOST || env.TESTCONTAINERS_HOST_OVERRIDE) return true;
  const home = homedir();
  const candidates = [
    join(home, '.testcontainers.properties'),
    '/var/run/docker.sock',
    join(home, '.docker', 'run', 'docker.sock'),
    join(home, '.docker', 'desktop', 'docker.sock'),
    join('/run', 'user', String(userInfo().uid), 'docker.sock'),
    ...(env.XDG_RUNTIME_DIR ? [join(env.XDG_RUNTIME_DIR, 'docker.sock')] : []),
  ];
  return candidates.some((path) => existsSync(path));
}

/** True when a Docker engine answers, so testcontainers can start containers. */
export async function dockerAvailable(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (!dockerHinted(env)) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

/**
 * PostgreSQL 15 in a container; user `postgres`. With `dataDir` the cluster lives in that host
 * folder (bind-mounted), so its data outlives the container.
 */
export async function startPostgresContainer(options: { dataDir?: string } = {}): Promise<StartedContainer> {
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  let container = new PostgreSqlContainer(POSTGRES_IMAGE).withUsername('postgres');
  if (options.dataDir) {
    container = container.withBindMounts([
      { source: options.dataDir, target: '/var/lib/postgresql/data', mode: 'rw' },
    ]);
  }
  const pg = await container.start();
  return { url: pg.getConnectionUri(), stop: async () => void (await pg.stop()) };
}

/** NATS with JetStream in a container; with `dataDir` its stream store lives in that host folder. */
export async function startNatsContainer(options: { dataDir?: string } = {}): Promise<StartedContainer> {
  const { GenericContainer, Wait } = await import('testcontainers');
  let container = new GenericContainer(NATS_IMAGE)
    .withCommand(options.dataDir ? ['-js', '-sd', '/data'] : ['-js'])
    .withExposedPorts(4222)
    .withWaitStrategy(Wait.forLogMessage(/Server is ready/));
  if (options.dataDir) {
    container = container.withBindMounts([{ source: options.dataDir, target: '/data', mode: 'rw' }]);
  }
  const nats = await container.start();
  return {
    url: `nats://${nats.getHost()}:${nats.getMappedPort(4222)}`,
    stop: async () => void (await nats.stop()),
  };
}
