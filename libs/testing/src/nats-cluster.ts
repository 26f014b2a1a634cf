import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type NatsServer, startNatsServer } from './nats-server.ts';
import { freePort } from './ports.ts';

/** The cluster node configuration the project ships, without its users (tests connect as none). */
export const NATS_CLUSTER_CONFIG = fileURLToPath(
  new URL('../../../infra/nats/cluster/node.conf', import.meta.url),
);

export interface NatsClusterNode extends NatsServer {
  /** server_name, as JetStream reports a stream's leader and replicas. */
  name: string;
  monitorUrl: string;
}

export interface NatsCluster {
  nodes: NatsClusterNode[];
  /** Every node's client URL, comma-separated (a NATS_URL). */
  url: string;
  /** The node named `name` (a stream leader's, say). */
  node: (name: string) => NatsClusterNode;
  /** Stops every node and removes the log folder. */
  stop: () => Promise<void>;
}

async function metaLeader(monitorUrl: string): Promise<string | undefined> {
  try {
    const jsz = (await (await fetch(`${monitorUrl}/jsz`)).json()) as { meta_cluster?: { leader?: string } };
    return jsz.meta_cluster?.leader || undefined;
  } catch {
    return undefined;
  }
}

/** Waits until every node knows the JetStream meta leader: then streams can be created. */
async function waitForMetaLeader(nodes: NatsClusterNode[], timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const leaders = await Promise.all(nodes.map((n) => metaLeader(n.monitorUrl)));
    if (leaders.every((l) => l !== undefined)) return;
    if (Date.now() > until)
      throw new Error(`the NATS cluster elected no JetStream leader within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Three private nats-server processes on loopback ports, clustered with JetStream by
 * infra/nats/cluster/node.conf, each with a temporary store. Resolves once JetStream has a leader.
 */
export async function startNatsCluster(
  options: { bin?: string; logDir?: string } = {},
): Promise<NatsCluster> {
  const ports = await Promise.all(
    [1, 2, 3].map(async () => ({
      client: await freePort(),
      route: await freePort(),
      http: await freePort(),
    })),
  );
  const logDir = options.logDir ?? mkdtempSync(join(tmpdir(), 'sw-nats-cluster-'));
  const routes = Object.fromEntries(
    ports.map((p, i) => [`NATS_ROUTE_${i + 1}`, `nats-route://127.0.0.1:${p.route}`]),
  );
  const nodes: NatsClusterNode[] = [];
  try {
    for (const [i, p] of ports.entries()) {
      const name = `sw-n${i + 1}`;
      const server = await startNatsServer({
        bin: options.bin,
        port: p.client,
        logFile: join(logDir, `${name}.log`),
        config: {
          file: NATS_CLUSTER_CONFIG,
          env: {
            ...routes,
            NATS_SERVER_NAME: name,
            NATS_CLIENT_LISTEN: `127.0.0.1:${p.client}`,
            NATS_HTTP_LISTEN: `127.0.0.1:${p.http}`,
            NATS_CLUSTER_LISTEN: `127.0.0.1:${p.route}`,
          },
        },
      });
      nodes.push({ ...server, name, monitorUrl: `http://127.0.0.1:${p.http}` });
    }
    await waitForMetaLeader(nodes, 30_000);
  } catch (error) {
    await Promise.all(nodes.map((n) => n.stop()));
    if (!options.logDir) rmSync(logDir, { recursive: true, force: true });
    throw error;
  }
  return {
    nodes,
    url: nodes.map((n) => n.url).join(','),
    node: (name) => {
      const found = nodes.find((n) => n.name === name);
      if (!found) throw new Error(`no node ${name} in the cluster (${nodes.map((n) => n.name).join(', ')})`);
      return found;
    },
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      if (!options.logDir) rmSync(logDir, { recursive: true, force: true });
    },
  };
}
