import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createSql, type Sql } from '@spywatcher/db';
import {
  createEvent,
  createPublisher,
  EVENT_TYPES,
  eventTable,
  type SpywatcherEvent,
} from '@spywatcher/events';
import { loadConfig } from '@spywatcher/service';
import { createTestDatabase, type TestDatabase, testNatsNames, testNatsUrl } from '@spywatcher/testing';
import { freePort } from '@spywatcher/testing/service-contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupManifest } from '../src/catalogue.ts';
import { opsEnv } from '../src/config.ts';
import type { Ops } from '../src/ops.ts';
import type { RestoreResult } from '../src/restore.ts';
import { createOps } from '../src/setup.ts';
import { SCHEDULES_OFF } from './helpers.ts';

// The real ingest service runs as its own process (apps never import each other), against
// this file's database and NATS names; ops restores that database under it.
const INGEST_MAIN = fileURLToPath(new URL('../../ingest/src/main.ts', import.meta.url));

let db: TestDatabase;
let nats: NatsConnection;
let ingest: ChildProcess;
let ingestLog = '';
let ops: Ops;
let backupDir: string;
const names = testNatsNames('rr');

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}\n${ingestLog.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function storedIds(sql: Sql): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const type of EVENT_TYPES) {
    const rows = await sql.unsafe<{ id: string }[]>(`select id::text as id from ${eventTable(type)}`);
    for (const r of rows) ids.add(r.id);
  }
  return ids;
}

const joins = (n: number) =>
  Array.from(
    { length: n },
    (_, i) =>
      createEvent('join', {
        user_id: String(1000 + i),
        username: `user${i}`,
        guild_id: '900',
        account_age_days: i,
      }) as SpywatcherEvent,
  );

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl(), name: 'ops-restore-replay' });
  backupDir = await mkdtemp(join(tmpdir(), 'sw-ops-rr-'));
  const port = await freePort();
  ingest = spawn(process.execPath, [INGEST_MAIN], {
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      NATS_URL: testNatsUrl(),
      NATS_STREAM: names.stream,
      NATS_SUBJECT_PREFIX: names.prefix,
      HOST: '127.0.0.1',
      PORT: String(port),
      AUTH_TOKENS: JSON.stringify([{ name: 't', token: 'restore-replay-token-0123', scopes: ['*'] }]),
      INGEST_BATCH_TIME_MS: '10',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  ingest.stdout!.on('data', (d) => {
    ingestLog += d;
  });
  ingest.stderr!.on('data', (d) => {
    ingestLog += d;
  });
  await waitFor('ingest to be ready', async () =>
    (await fetch(`http://127.0.0.1:${port}/ready`)).ok ? true : undefined,
  );
  const config = {
    ...loadConfig(opsEnv, {
      BACKUP_DIR: backupDir,
      ...SCHEDULES_OFF,
      NATS_PREFIX: names.prefix,
      OPS_FENCE_INGEST_INSTANCES: '1',
      OPS_FENCE_ANSWER_MS: '5000',
      OPS_REPLAY_MARGIN_MS: '0',
    }),
    DATABASE_URL: db.url,
  };
  ops = createOps(config, { sql: db.sql, nats, names });
});

afterAll(async () => {
  await ops?.runner.stop();
  if (ingest && ingest.exitCode === null) {
    ingest.kill('SIGTERM');
    await once(ingest, 'exit');
  }
  await nats?.drain();
  await db?.drop();
  await rm(backupDir, { recursive: true, force: true });
});

describe('restore, then replay', () => {
  it('restoring the live database under a running ingest loses no event the stream holds', async () => {
    const publisher = createPublisher({ nc: nats, names, maxInFlight: 64 });
    const before = joins(120);
    await publisher.publishAll(before);
    await waitFor('the first events', async () => {
      const ids = await storedIds(db.sql);
      return before.every((e) => ids.has(e.id)) ? true : undefined;
    });
    const backup = await (await ops.startBackup('http')).done;
    expect(backup.status, backup.error ?? '').toBe('succeeded');
    const manifest = (backup.result as { backup: BackupManifest }).backup;

    const after = joins(80);
    await publisher.publishAll(after);
    await waitFor('the events after the backup', async () => {
      const ids = await storedIds(db.sql);
      return after.every((e) => ids.has(e.id)) ? true : undefined;
    });

    // events keep coming while the restore runs: they wait in JetStream during the pause
    let publishing = true;
    const during: SpywatcherEvent[] = [];
    const background = (async () => {
      while (publishing) {
        const batch = joins(10);
        await publisher.publishAll(batch);
        during.push(...batch);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const restore = await (
      await ops.startRestore('http', { backupId: manifest.id, target: db.name, confirm: db.name })
    ).done;
    publishing = false;
    await background;
    expect(restore.status, `${restore.error}\n${ingestLog.slice(-2000)}`).toBe('succeeded');
    const result = restore.result as RestoreResult;
    expect(result.fence).toEqual({ ingestInstances: 1, readOnlyTarget: true });
    expect(result.safetyBackupId).toBeTruthy();
    expect(result.replay).toMatchObject({ beyond_retention: false });
    // the 80 events stored after the backup are not in it: the replay brings them back
    expect(result.replay!.replayed).toBeGreaterThanOrEqual(80);

    const sql = createSql({ url: db.url, applicationName: 'ops-test', max: 1 });
    try {
      const everything = [...before, ...after, ...during];
      const ids = await waitFor('every published event in the restored database', async () => {
        const stored = await storedIds(sql);
        return everything.every((e) => stored.has(e.id)) ? stored : undefined;
      });
      expect(everything.filter((e) => !ids.has(e.id))).toEqual([]);
      // the database is writable again (the fence was lifted with the swap)
      const [{ ro }] =
        (await sql`select current_setting('default_transaction_read_only') as ro`) as unknown as [
          { ro: string },
        ];
      expect(ro).toBe('off');
    } finally {
      await sql.end();
    }
    expect(ingest.exitCode).toBeNull();
  }, 240_000);
});
