import { connect } from '@nats-io/transport-node';
import { createSql } from '@spywatcher/db';
import { DEFAULT_NATS_NAMES } from '@spywatcher/events';
import { buildApp as buildIngest } from '@spywatcher/ingest/app';
import { buildApp as buildMigrator } from '@spywatcher/migrator/app';
import { buildApp as buildOps } from '@spywatcher/ops/app';
import { opsEnv } from '@spywatcher/ops/config';
import { createOps } from '@spywatcher/ops/setup';
import { buildApp as buildSearch } from '@spywatcher/search/app';
import { createAuth, createMetricsRegistry, loadConfig, type ServiceInstance } from '@spywatcher/service';

export const SERVICE_NAMES = ['ingest', 'search', 'migrator', 'ops'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];
export type OpenApiDocument = Record<string, unknown> & { paths: Record<string, Record<string, unknown>> };

/**
 * The OpenAPI document of each service, as its /openapi.json serves it: the apps are built as
 * their main.ts builds them. Building does no I/O; the pool is never queried and NATS is only
 * connected to because the apps take a live connection.
 */
export async function serviceDocuments(
  env: NodeJS.ProcessEnv = process.env,
): Promise<Record<ServiceName, OpenApiDocument>> {
  const databaseUrl = env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const sql = createSql({ url: databaseUrl, applicationName: 'spywatcher-openapi', max: 1 });
  const nats = await connect({
    servers: env.NATS_URL ?? 'nats://127.0.0.1:4222',
    name: 'spywatcher-openapi',
  });
  const deps = (name: string) => ({
    sql,
    nats,
    auth: createAuth([]),
    metrics: createMetricsRegistry(name),
    logger: false as const,
  });
  const ops = createOps(
    { ...loadConfig(opsEnv, { OPS_SCHEDULE_BACKUP: 'off' }), DATABASE_URL: databaseUrl },
    { sql, names: DEFAULT_NATS_NAMES },
  );
  const apps: Record<ServiceName, ServiceInstance> = {
    ingest: await buildIngest(deps('ingest')),
    search: await buildSearch(deps('search')),
    migrator: await buildMigrator(deps('migrator')),
    ops: await buildOps({ ...deps('ops'), ops }),
  };
  try {
    const out = {} as Record<ServiceName, OpenApiDocument>;
    for (const name of SERVICE_NAMES) {
      await apps[name].ready();
      // A JSON round trip, as a client receives it (drops undefined, TypeBox's symbols).
      out[name] = JSON.parse(JSON.stringify(apps[name].swagger())) as OpenApiDocument;
    }
    return out;
  } finally {
    for (const app of Object.values(apps)) await app.close();
    await nats.drain();
    await sql.end({ timeout: 1 });
  }
}
