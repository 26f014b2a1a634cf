import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { partitionUpkeep, type Queryable } from '@spywatcher/db';
import {
  createAuth,
  createMetricsRegistry,
  loadConfig,
  type Registry,
  type ServiceInstance,
} from '@spywatcher/service';
import { createTestDatabase, type TestDatabase, testNatsNames, testNatsUrl } from '@spywatcher/testing';
import { buildApp } from '../src/app.ts';
import { opsEnv } from '../src/config.ts';
import type { Job } from '../src/jobs.ts';
import type { Ops } from '../src/ops.ts';
import { createOps, type OpsConfig, startBackground } from '../src/setup.ts';
import { dataTables, qualified } from '../src/tables.ts';

export const TOKENS = {
  reader: 'reader-token-0123456789',
  writer: 'writer-token-0123456789',
  restorer: 'restorer-token-0123456789',
  none: 'nothing-token-0123456789',
};
export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

export const SCHEDULES_OFF = {
  OPS_SCHEDULE_BACKUP: 'off',
  OPS_SCHEDULE_VERIFY: 'off',
  OPS_SCHEDULE_MAINTENANCE: 'off',
  OPS_SCHEDULE_PARTITIONS: 'off',
  OPS_SCHEDULE_RETENTION: 'off',
};

export interface Harness {
  db: TestDatabase;
  nats: NatsConnection;
  names: { prefix: string; stream: string };
  backupDir: string;
  ops: Ops;
  app: ServiceInstance;
  metrics: Registry;
  config: OpsConfig;
  /** Another Ops on the same database with different settings (stopped by close). */
  variant: (env: Record<string, string>, databaseUrl?: string) => Promise<Ops>;
  waitJob: (id: string) => Promise<Job>;
  close: () => Promise<void>;
}

export async function harness(env: Record<string, string> = {}): Promise<Harness> {
  const db = await createTestDatabase();
  const nats = await connect({ servers: testNatsUrl(), name: 'ops-tests' });
  const names = testNatsNames('ops');
  const backupDir = await mkdtemp(join(tmpdir(), 'sw-ops-test-'));
  const configOf = (extra: Record<string, string>, url: string): OpsConfig => ({
    ...loadConfig(opsEnv, {
      BACKUP_DIR: backupDir,
      RESTORE_JOBS: '1',
      OPS_RESTORE_TARGETS: 'sw_restored_*, sw_busy_*, sw_target_*',
      ...SCHEDULES_OFF,
      ...extra,
    }),
    DATABASE_URL: url,
  });
  const config = configOf(env, db.url);
  const ops = createOps(config, { sql: db.sql, nats, names });
  const metrics = createMetricsRegistry('ops');
  const auth = createAuth([
    { name: 'reader', token: TOKENS.reader, scopes: ['ops:read', 'metrics:read'] },
    { name: 'writer', token: TOKENS.writer, scopes: ['ops:read', 'ops:write'] },
    { name: 'restorer', token: TOKENS.restorer, scopes: ['ops:read', 'ops:restore'] },
    { name: 'nobody', token: TOKENS.none, scopes: ['events:write'] },
  ]);
  const background = await startBackground(ops, { nats, auth, names, log: () => {} });
  const app = await buildApp({ sql: db.sql, nats, auth, metrics, ops, logger: false });
  const extras: Ops[] = [];
  return {
    db,
    nats,
    names,
    backupDir,
    ops,
    app,
    metrics,
    config,
    variant: async (extra, url = db.url) => {
      const o = createOps(configOf(extra, url), { sql: db.sql, nats, names });
      extras.push(o);
      return o;
    },
    waitJob: async (id) => {
      const done = ops.runner.wait(id) ?? extras.map((o) => o.runner.wait(id)).find(Boolean);
      if (done) await done;
      return (await ops.runner.get(id))!;
    },
    close: async () => {
      await app.close();
      await background.stop();
      for (const o of extras) await o.runner.stop();
      await nats.drain();
      await db.drop();
      await rm(backupDir, { recursive: true, force: true });
    },
  };
}

/** A few hundred rows in reference and event tables, spread over several partitions. */
export async function seed(sql: Parameters<typeof partitionUpkeep>[0], rows = 300): Promise<void> {
  await partitionUpkeep(sql, { ahead: 3, skipRetention: true });
  await sql`
    insert into users (discord_id, username, access_token, refresh_token, access_token_expires_at)
    values ('d1', 'owner', 'enc:v1:test:not-a-real-token', 'enc:v1:test:not-a-real-token', now() + interval '1 day')
  `;
  await sql`
    insert into guilds (guild_id, name, user_id)
    select 'g' || i, 'Guild ' || i, (select id from users limit 1) from generate_series(1, 5) i
  `;
  await sql`
    insert into message_events (id, occurred_at, message_id, user_id, username, channel_id, channel_name, guild_id, content)
    select gen_random_uuid(), now() + (i % 20) * interval '1 day', 'm' || i, 'u' || (i % 17), 'user' || (i % 17),
           'c' || (i % 3), 'general', 'g' || (i % 5), 'hello café number ' || i
    from generate_series(1, ${rows}) i
  `;
  await sql`
    insert into presence_events (id, occurred_at, user_id, username, guild_id, clients, status)
    select gen_random_uuid(), now() + (i % 20) * interval '1 day', 'u' || (i % 17), 'user' || (i % 17), 'g1',
           array['desktop'], 'online'
    from generate_series(1, ${rows}) i
  `;
}

/** md5 of every row of every data table, keyed schema.table. */
export async function tableChecksums(sql: Queryable): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of await dataTables(sql)) {
    const [row] = await sql.unsafe<{ sum: string }[]>(
      `select md5(coalesce(string_agg(r::text, E'\\n' order by r::text), '')) as sum from ${qualified(t.schema, t.name)} r`,
    );
    out[`${t.schema}.${t.name}`] = row!.sum;
  }
  return out;
}
