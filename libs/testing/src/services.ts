export interface TestServices {
  databaseUrl: string;
  natsUrl: string;
  stop: () => Promise<void>;
}

const LOCAL_DATABASE = 'postgres://postgres@127.0.0.1:5432/postgres';
const LOCAL_NATS = 'nats://127.0.0.1:4222';

async function dockerAvailable(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

/**
 * DATABASE_URL / NATS_URL when set. Otherwise testcontainers starts PostgreSQL 15 and NATS
 * with JetStream, when a Docker engine is reachable; without one, the local defaults.
 */
export async function resolveTestServices(env = process.env): Promise<TestServices> {
  const stops: (() => Promise<unknown>)[] = [];
  let databaseUrl = env.DATABASE_URL;
  let natsUrl = env.NATS_URL;
  if ((!databaseUrl || !natsUrl) && (await dockerAvailable())) {
    if (!databaseUrl) {
      const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
      const pg = await new PostgreSqlContainer('postgres:15').withUsername('postgres').start();
      databaseUrl = pg.getConnectionUri();
      stops.push(() => pg.stop());
    }
    if (!natsUrl) {
      const { GenericContainer, Wait } = await import('testcontainers');
      const nats = await new GenericContainer('nats:2.9')
        .withCommand(['-js'])
        .withExposedPorts(4222)
        .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
        .start();
      natsUrl = `nats://${nats.getHost()}:${nats.getMappedPort(4222)}`;
      stops.push(() => nats.stop());
    }
  }
  if (!databaseUrl || !natsUrl) {
    process.stderr.write(
      'tests: DATABASE_URL/NATS_URL not set and no Docker engine for testcontainers; using the local PostgreSQL and NATS\n',
    );
  }
  return {
    databaseUrl: databaseUrl ?? LOCAL_DATABASE,
    natsUrl: natsUrl ?? LOCAL_NATS,
    stop: async () => {
      for (const stop of stops) await stop();
    },
  };
}
