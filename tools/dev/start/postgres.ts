import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createSql, databaseNameOf, ensureDatabase, redactUrl, withDatabase } from '@spywatcher/db';
import { dockerAvailable, startPostgresContainer } from '@spywatcher/testing/containers';
import { embeddedBinaries, startEmbeddedPostgres } from './embedded-postgres.ts';
import { isUnreachable, reasonOf, StartFailure } from './failure.ts';
import { preferredPort } from './ports.ts';
import type { StartSettings } from './settings.ts';

const APPLICATION_NAME = 'spywatcher-start';

export interface ResolvedPostgres {
  /** The database the services use. */
  url: string;
  how: string;
  /** Set when npm start runs the server: stopped after the services. */
  stop?: () => Promise<void>;
}

/** The database name npm start uses on the server at `serverUrl` (never its `postgres` database). */
export function ownDatabaseUrl(serverUrl: string, settings: Pick<StartSettings, 'database'>): string {
  return withDatabase(serverUrl, settings.database);
}

/** Drops the database `url` names (for --fresh on a server npm start did not start itself). */
async function dropDatabase(url: string): Promise<void> {
  const admin = createSql({ url: withDatabase(url, 'postgres'), applicationName: APPLICATION_NAME, max: 1 });
  try {
    await admin`drop database if exists ${admin(databaseNameOf(url))} with (force)`;
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** Creates the database when missing, saying so. */
async function prepare(url: string, how: string, stop?: () => Promise<void>): Promise<ResolvedPostgres> {
  if (await ensureDatabase(url, APPLICATION_NAME)) {
    process.stdout.write(`npm start: created database ${databaseNameOf(url)}\n`);
  }
  return { url, how, stop };
}

async function givenPostgres(url: string): Promise<ResolvedPostgres> {
  try {
    return await prepare(url, 'DATABASE_URL');
  } catch (error) {
    throw new StartFailure(
      `cannot use PostgreSQL at ${redactUrl(url)} (DATABASE_URL): ${reasonOf(error)}.`,
      `${isUnreachable(error) ? 'Start PostgreSQL there' : 'Fix its user, password or database'}, or unset DATABASE_URL to let npm start find or run a PostgreSQL itself.`,
    );
  }
}

/** The local server when it answers; undefined when nothing listens there. */
async function localPostgres(settings: StartSettings): Promise<ResolvedPostgres | undefined> {
  const url = ownDatabaseUrl(settings.probeDatabaseUrl, settings);
  try {
    if (settings.fresh) await dropDatabase(url);
    return await prepare(url, 'the local PostgreSQL');
  } catch (error) {
    if (isUnreachable(error)) return undefined;
    const { host } = new URL(url);
    throw new StartFailure(
      `PostgreSQL at ${host} answers, but npm start cannot use database ${databaseNameOf(url)} there: ${reasonOf(error)}.`,
      `Set DATABASE_URL to a database you may use, e.g. DATABASE_URL=postgres://USER:PASSWORD@${host}/${databaseNameOf(url)} npm start`,
    );
  }
}

/**
 * DATABASE_URL when set; else the local PostgreSQL when it answers; else one npm start runs
 * itself with its data in START_DATA_DIR: a container when Docker is there, else the embedded
 * build npm installed. Always a database of its own (START_DATABASE, default spywatcher),
 * created when missing. Otherwise a StartFailure naming what to install.
 */
export async function resolvePostgres(settings: StartSettings): Promise<ResolvedPostgres> {
  if (settings.databaseUrl) {
    if (settings.fresh) {
      process.stdout.write('npm start: --fresh leaves the database DATABASE_URL names as it is\n');
    }
    return givenPostgres(settings.databaseUrl);
  }
  const local = await localPostgres(settings);
  if (local) return local;

  if (settings.docker && (await dockerAvailable())) {
    const dataDir = join(settings.dataDir, 'postgres-docker');
    if (settings.fresh) rmSync(dataDir, { recursive: true, force: true });
    const c = await startPostgresContainer({ dataDir }).catch((error: unknown) => {
      throw new StartFailure(
        `PostgreSQL did not start in Docker: ${reasonOf(error)}.`,
        'Check the Docker engine, or run START_DOCKER=false npm start to use the embedded PostgreSQL.',
      );
    });
    return prepare(
      ownDatabaseUrl(c.url, settings),
      `PostgreSQL 15 in Docker (data in ${join(settings.dataDirShown, 'postgres-docker')})`,
      c.stop,
    );
  }
  const bin = await embeddedBinaries();
  if (!bin) {
    throw new StartFailure(
      `no PostgreSQL: DATABASE_URL is not set, nothing answers at ${new URL(settings.probeDatabaseUrl).host}, there is no Docker engine${settings.docker ? '' : ' (START_DOCKER=false)'}, and npm installed no embedded PostgreSQL for ${process.platform}-${process.arch}.`,
      'Install PostgreSQL 15 (Debian/Ubuntu: apt-get install postgresql-15) or set DATABASE_URL, then npm start again.',
    );
  }
  const dataDir = join(settings.dataDir, 'postgres');
  if (settings.fresh) rmSync(dataDir, { recursive: true, force: true });
  const server = await startEmbeddedPostgres(bin, {
    dataDir,
    port: await preferredPort(settings.probeDatabaseUrl, 5432),
  });
  try {
    return await prepare(
      ownDatabaseUrl(server.url, settings),
      `embedded PostgreSQL 15 (data in ${join(settings.dataDirShown, 'postgres')})`,
      server.stop,
    );
  } catch (error) {
    await server.stop();
    throw error;
  }
}
