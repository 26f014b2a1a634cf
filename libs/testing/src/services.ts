import { dockerAvailable, startNatsContainer, startPostgresContainer } from './containers.ts';

export interface TestServices {
  databaseUrl: string;
  natsUrl: string;
  stop: () => Promise<void>;
}

const LOCAL_DATABASE = 'postgres://postgres@127.0.0.1:5432/postgres';
const LOCAL_NATS = 'nats://127.0.0.1:4222';

/**
 * DATABASE_URL / NATS_URL when set. Otherwise testcontainers starts PostgreSQL 15 and NATS
 * with JetStream, when a Docker engine is reachable; without one, the local defaults.
 */
export async function resolveTestServices(env = process.env): Promise<TestServices> {
  const stops: (() => Promise<unknown>)[] = [];
  let databaseUrl = env.DATABASE_URL;
  let natsUrl = env.NATS_URL;
  if ((!databaseUrl || !natsUrl) && (await dockerAvailable(env))) {
    if (!databaseUrl) {
      const pg = await startPostgresContainer();
      databaseUrl = pg.url;
      stops.push(pg.stop);
    }
    if (!natsUrl) {
      const nats = await startNatsContainer();
      natsUrl = nats.url;
      stops.push(nats.stop);
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
