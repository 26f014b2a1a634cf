import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Sql } from '@spywatcher/db';
import {
  type Auth,
  createAuth,
  createMetricsRegistry,
  loadConfig,
  type ServiceInstance,
} from '@spywatcher/service';
import { testNatsNames } from '@spywatcher/testing';
import { buildApp as buildIngest } from '../../apps/ingest/src/app.ts';
import { buildApp as buildMigrator } from '../../apps/migrator/src/app.ts';
import { buildApp as buildOps } from '../../apps/ops/src/app.ts';
import { opsEnv } from '../../apps/ops/src/config.ts';
import { createOps } from '../../apps/ops/src/setup.ts';
import { buildApp as buildSearch } from '../../apps/search/src/app.ts';
import { SCOPES } from '../dev/start/scopes.ts';

export const SERVICE_NAMES = ['ingest', 'search', 'migrator', 'ops'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** Tokens the suite calls with: every scope, metrics only, and one scope no route asks for. */
export const TOKENS = {
  all: 'security-all-scopes-0123456789',
  metrics: 'security-metrics-only-0123456789',
  unrelated: 'security-unrelated-0123456789',
};
export const as = (token: string) => ({ authorization: `Bearer ${token}` });

export function securityAuth(options: { metricsPublic?: boolean } = {}): Auth {
  return createAuth(
    [
      { name: 'all', token: TOKENS.all, scopes: SCOPES },
      { name: 'metrics', token: TOKENS.metrics, scopes: ['metrics:read'] },
      { name: 'unrelated', token: TOKENS.unrelated, scopes: ['unrelated:scope'] },
    ],
    options,
  );
}

export interface FourServices {
  apps: Record<ServiceName, ServiceInstance>;
  /** IMPORT_DIR of the migrator and BACKUP_DIR of ops, both under one temporary folder. */
  importDir: string;
  close(): Promise<void>;
}

/** The four services built as their main.ts builds them, on the given pool and NATS connection. */
export async function buildFourServices(deps: {
  sql: Sql;
  databaseUrl: string;
  nats: NatsConnection;
  auth?: Auth;
}): Promise<FourServices> {
  const root = mkdtempSync(join(tmpdir(), 'spywatcher-security-'));
  const importDir = join(root, 'imports');
  const backupDir = join(root, 'backups');
  for (const dir of [importDir, backupDir]) mkdirSync(dir);
  const auth = deps.auth ?? securityAuth();
  const common = (name: string) => ({
    sql: deps.sql,
    nats: deps.nats,
    auth,
    metrics: createMetricsRegistry(name),
    logger: false as const,
  });
  const names = testNatsNames('sec');
  const ops = createOps(
    {
      ...loadConfig(opsEnv, {
        BACKUP_DIR: backupDir,
        OPS_SCHEDULE_BACKUP: 'off',
        OPS_SCHEDULE_VERIFY: 'off',
        OPS_SCHEDULE_MAINTENANCE: 'off',
        OPS_SCHEDULE_PARTITIONS: 'off',
        OPS_SCHEDULE_RETENTION: 'off',
      }),
      DATABASE_URL: deps.databaseUrl,
    },
    { sql: deps.sql, names },
  );
  const apps: Record<ServiceName, ServiceInstance> = {
    ingest: await buildIngest({ ...common('ingest'), names }),
    search: await buildSearch(common('search')),
    migrator: await buildMigrator({ ...common('migrator'), importDir }),
    ops: await buildOps({ ...common('ops'), ops }),
  };
  return {
    apps,
    importDir,
    async close() {
      for (const app of Object.values(apps)) await app.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
