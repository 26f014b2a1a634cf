import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { natsConnectionOptions, redactServers } from '@spywatcher/service';
import { dockerAvailable, startNatsContainer } from '@spywatcher/testing/containers';
import { findNatsServer, startNatsServer } from '@spywatcher/testing/nats-server';
import { isUnreachable, reasonOf, StartFailure } from './failure.ts';
import { preferredPort } from './ports.ts';
import type { StartSettings } from './settings.ts';

export interface ResolvedNats {
  url: string;
  /** What it is, for the summary line. */
  how: string;
  /** Set when npm start runs it: stopped after the services. */
  stop?: () => Promise<void>;
}

const HOW_TO_GET_NATS =
  'Get NATS 2.9+ with JetStream: apt-get install nats-server (Debian/Ubuntu), the nats-server release ' +
  'binary (github.com/nats-io/nats-server/releases), or docker run -p 4222:4222 nats:2.9 -js; then npm start again.';

/** Throws when nothing usable answers at `url`: no server, or one without JetStream. */
export async function probeNats(url: string): Promise<void> {
  const nc = await connect({
    ...natsConnectionOptions(
      {
        NATS_URL: url,
        NATS_USER: process.env.NATS_USER ?? '',
        NATS_PASSWORD: process.env.NATS_PASSWORD ?? '',
        NATS_TOKEN: process.env.NATS_TOKEN ?? '',
        NATS_CREDS: process.env.NATS_CREDS ?? '',
      },
      'start',
    ),
    timeout: 3000,
    reconnect: false,
    name: 'spywatcher-start',
  });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 3000 });
    await jsm.getAccountInfo();
  } catch (error) {
    throw new Error(`it answers but JetStream is not enabled there (${reasonOf(error)}); start it with -js`);
  } finally {
    await nc.close();
  }
}

async function givenNats(url: string): Promise<ResolvedNats> {
  try {
    await probeNats(url);
  } catch (error) {
    throw new StartFailure(
      `cannot use NATS at ${redactServers(url)} (NATS_URL): ${reasonOf(error)}.`,
      'Start NATS (with -js) there, fix NATS_URL, or unset NATS_URL to let npm start find or run a NATS itself.',
    );
  }
  return { url, how: 'NATS_URL' };
}

/**
 * NATS_URL when set (and reachable); else the local NATS when it answers; else one npm start
 * runs itself: a container when Docker is there, else nats-server when installed. Otherwise
 * a StartFailure naming how to get NATS.
 */
export async function resolveNats(settings: StartSettings): Promise<ResolvedNats> {
  if (settings.natsUrl) return givenNats(settings.natsUrl);
  const probe = settings.probeNatsUrl;
  try {
    await probeNats(probe);
    return { url: probe, how: 'the local NATS' };
  } catch (error) {
    if (!isUnreachable(error)) {
      throw new StartFailure(
        `NATS at ${probe} cannot be used: ${reasonOf(error)}.`,
        'Fix that server, or set NATS_URL to one that has JetStream.',
      );
    }
  }
  const dataDir = join(settings.dataDir, 'nats');
  if (settings.fresh) rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });

  if (settings.docker && (await dockerAvailable())) {
    const c = await startNatsContainer({ dataDir }).catch((error: unknown) => {
      throw new StartFailure(
        `NATS did not start in Docker: ${reasonOf(error)}.`,
        'Check the Docker engine, or run START_DOCKER=false npm start to use nats-server.',
      );
    });
    return {
      url: c.url,
      how: `NATS in Docker (data in ${join(settings.dataDirShown, 'nats')})`,
      stop: c.stop,
    };
  }
  const bin = findNatsServer();
  if (!bin) {
    throw new StartFailure(
      `no NATS: NATS_URL is not set, nothing answers at ${probe}, there is no Docker engine${settings.docker ? '' : ' (START_DOCKER=false)'}, and no nats-server binary${process.env.NATS_SERVER_BIN ? ` (NATS_SERVER_BIN=${process.env.NATS_SERVER_BIN} is not executable)` : ' on PATH'}.`,
      HOW_TO_GET_NATS,
    );
  }
  try {
    const server = await startNatsServer({
      bin,
      port: await preferredPort(probe, 4222),
      storeDir: dataDir,
      logFile: join(settings.dataDir, 'nats.log'),
    });
    return {
      url: server.url,
      how: `nats-server ${bin} (data in ${join(settings.dataDirShown, 'nats')})`,
      stop: server.stop,
    };
  } catch (error) {
    throw new StartFailure(
      (error as Error).message.replace(/\n/g, ' | '),
      `See ${join(settings.dataDirShown, 'nats.log')}, or set NATS_URL to a running NATS.`,
    );
  }
}
