import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createSql, withDatabase } from '@spywatcher/db';
import { loadConfig } from '@spywatcher/service';
import { adminDatabaseUrl } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropDatabase } from '../src/backups.ts';
import { type BackupManifest, retentionVictims } from '../src/catalogue.ts';
import { opsEnv } from '../src/config.ts';
import type { Job } from '../src/jobs.ts';
import { createOps } from '../src/setup.ts';
import { bearer, type Harness, harness, SCHEDULES_OFF, seed, TOKENS } from './helpers.ts';

const execFileAsync = promisify(execFile);
let h: Harness;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
const mounts: string[] = [];
const dropLater: string[] = [];

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  h = await harness();
  await seed(h.db.sql, 200);
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  for (const dir of mounts) {
    await execFileAsync('umount', ['-l', dir]).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
  for (const name of dropLater) await dropDatabase(adminDatabaseUrl(), name);
  await h?.close();
});

/** A real small filesystem (tmpfs; the tests run as root, as CI does). */
async function tinyDir(sizeBytes: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sw-ops-tiny-'));
  await execFileAsync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

/** A TCP endpoint that accepts connections and never answers: a stalled S3 server. */
async function stalledEndpoint(): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

const manifestOf = (job: Job) => (job.result as { backup: BackupManifest }).backup;

describe('a full disk', () => {
  it('refuses a backup that cannot fit before writing anything', async () => {
    const dir = await tinyDir(2 * 1024 * 1024);
    const ops = await h.variant({ BACKUP_DIR: dir });
    const job = await (await ops.startBackup('http')).done;
    expect(job.status).toBe('failed');
    expect(job.error).toMatch(
      /not enough free space in BACKUP_DIR .*MiB free, about .*MiB needed.*nothing was written/,
    );
    expect(await readdir(dir)).toEqual([]);
  });

  it('a disk that fills during the dump fails the job with the reason, leaves nothing, and the next backup works', async () => {
    // 20 MB of incompressible rows; an earlier backup of this database with a tiny size ratio makes
    // the estimate pass, so the write itself runs out of space
    await h.db.sql`create table filler (id int, noise text)`;
    await h.db
      .sql`insert into filler select i, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) from generate_series(1, 150000) i`;
    const dir = await tinyDir(10 * 1024 * 1024);
    const earlier: BackupManifest = {
      id: '20200101T000000Z-00000001',
      file: '20200101T000000Z-00000001.dump',
      database: h.db.name,
      kind: 'regular',
      serverVersion: '15',
      pgDumpVersion: 'pg_dump 15',
      latestMigration: null,
      format: 'custom',
      compression: 6,
      tables: {},
      totalRows: 0,
      sizeBytes: 1,
      sha256: '0'.repeat(64),
      createdAt: '2020-01-01T00:00:00.000Z',
      durationMs: 1,
      databaseSizeBytes: 1_000_000_000,
    };
    await writeFile(join(dir, `${earlier.id}.json`), JSON.stringify(earlier));
    const ops = await h.variant({ BACKUP_DIR: dir, BACKUP_KEEP_DAYS: '100000' });
    const failed = await (await ops.startBackup('http')).done;
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/BACKUP_DIR .* is full \(ENOSPC\)/);
    expect((await readdir(dir)).filter((f) => f !== `${earlier.id}.json`)).toEqual([]);
    expect(await ops.runner.get(failed.id)).toMatchObject({ status: 'failed' });
    await h.db.sql`drop table filler`;
    const next = await (await ops.startBackup('http')).done;
    expect(next.status, next.error ?? '').toBe('succeeded');
    expect(unhandled).toEqual([]);
  }, 240_000);
});

describe('a stalled S3 endpoint', () => {
  it('a stall times out into an off-site error on a complete local backup, and the CLI exits 3 saying so', async () => {
    const s3 = await stalledEndpoint();
    try {
      const env = {
        OPS_S3_BUCKET: 'backups',
        OPS_S3_ENDPOINT: s3.url,
        OPS_S3_FORCE_PATH_STYLE: 'true',
        OPS_S3_STALL_TIMEOUT_MS: '300',
        AWS_ACCESS_KEY_ID: 'x',
        AWS_SECRET_ACCESS_KEY: 'y',
      };
      const cli = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
      const run = await execFileAsync(process.execPath, [cli, 'backup'], {
        env: { ...process.env, ...env, ...SCHEDULES_OFF, DATABASE_URL: h.db.url, BACKUP_DIR: h.backupDir },
      }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      expect(run.code).toBe(3);
      expect(run.stderr).toMatch(/complete locally, but its off-site copy failed/);
      const newest = (await h.ops.catalogue.list())[0]!;
      expect(newest.offsiteError).toBeTruthy();
      expect(newest.offsite).toBeUndefined();
    } finally {
      await s3.close();
    }
  });

  it('cancel answers at once while the copy is stalled; the local backup is kept', async () => {
    const s3 = await stalledEndpoint();
    process.env.AWS_ACCESS_KEY_ID = 'x';
    process.env.AWS_SECRET_ACCESS_KEY = 'y';
    try {
      const config = {
        ...loadConfig(opsEnv, {
          BACKUP_DIR: h.backupDir,
          ...SCHEDULES_OFF,
          OPS_S3_BUCKET: 'backups',
          OPS_S3_ENDPOINT: s3.url,
          OPS_S3_FORCE_PATH_STYLE: 'true',
          OPS_S3_STALL_TIMEOUT_MS: '600000',
        }),
        DATABASE_URL: h.db.url,
      };
      let copying!: () => void;
      const reachedCopy = new Promise<void>((r) => {
        copying = r;
      });
      const ops = createOps(config, {
        sql: h.db.sql,
        names: h.names,
        onUpdate: (job) => {
          if (job.progress.message === 'copying off-site') copying();
        },
      });
      const { job, done } = await ops.startBackup('http');
      await reachedCopy;
      await new Promise((r) => setTimeout(r, 200));
      expect(await ops.runner.cancel(job.id, 'cancelled by test')).toBe(true);
      expect(await ops.runner.settle(job.id, 1000)).toBe(true);
      const cancelled = await done;
      expect(cancelled.status).toBe('cancelled');
      expect(cancelled.error).toBe('cancelled by test');
      const kept = (await h.ops.catalogue.list())[0]!;
      expect(kept.offsiteError).toBe('the off-site copy was cancelled');
      expect(await readdir(h.backupDir)).toContain(kept.file);
      await ops.runner.stop();
    } finally {
      await s3.close();
    }
  });
});

describe('broken manifests and retention per database', () => {
  it('a broken manifest is skipped with a finding: listings, health and /metrics answer, new backups succeed', async () => {
    const broken = join(h.backupDir, '20250101T000000Z-0badf00d.json');
    await writeFile(broken, '{"id": "20250101T000000Z-0badf00d", "file": ');
    try {
      const list = await h.app.inject({ method: 'GET', url: '/v1/backups', headers: bearer(TOKENS.reader) });
      expect(list.statusCode, list.body).toBe(200);
      expect(list.json().broken).toEqual([
        { file: '20250101T000000Z-0badf00d.json', error: expect.stringMatching(/unreadable/) },
      ]);
      const one = await h.app.inject({
        method: 'GET',
        url: '/v1/backups/20250101T000000Z-0badf00d',
        headers: bearer(TOKENS.reader),
      });
      expect(one.statusCode).toBe(422);
      expect(one.json().error.code).toBe('BROKEN_MANIFEST');
      const health = await h.app.inject({
        method: 'GET',
        url: '/v1/database/health',
        headers: bearer(TOKENS.reader),
      });
      expect(health.statusCode, health.body).toBe(200);
      expect(health.json().findings).toContainEqual(
        expect.objectContaining({ check: 'backup_manifest', subject: '20250101T000000Z-0badf00d.json' }),
      );
      const metrics = await h.app.inject({ method: 'GET', url: '/metrics', headers: bearer(TOKENS.reader) });
      expect(metrics.statusCode).toBe(200);
      expect(metrics.body).toMatch(/^spywatcher_backup_broken_manifests(\{[^}]*\})? 1/m);
      const job = await (await h.ops.startBackup('http')).done;
      expect(job.status, job.error ?? '').toBe('succeeded');
    } finally {
      await rm(broken, { force: true });
    }
  });

  it('retention and "last backup" are per database; safety backups have their own rule', async () => {
    const mk = (id: string, database: string, daysAgo: number, kind: 'regular' | 'safety' = 'regular') =>
      ({
        id,
        database,
        kind,
        createdAt: new Date(Date.now() - daysAgo * 86_400_000).toISOString(),
      }) as BackupManifest;
    const list = [
      mk('live-1', 'live', 0),
      mk('live-2', 'live', 2),
      mk('other-1', 'other', 0),
      mk('safety-1', 'live', 1, 'safety'),
      mk('safety-2', 'live', 3, 'safety'),
      mk('safety-3', 'live', 20, 'safety'),
    ];
    const victims = retentionVictims(list, { keepDays: 30, keepCount: 1, safetyKeepDays: 14 });
    // the other database's newer backup never pushes out live's; safety backups do not count
    expect(victims.map((v) => v.id).sort()).toEqual(['live-2', 'safety-3']);

    // health reports this database's last backup, not a newer one of another database
    const other = JSON.parse(JSON.stringify((await h.ops.catalogue.list())[0])) as BackupManifest;
    other.id = '20991231T000000Z-00000002';
    other.file = `${other.id}.dump`;
    other.database = 'some_other_database';
    other.createdAt = new Date().toISOString();
    await h.ops.catalogue.write(other);
    try {
      const report = await h.ops.health();
      expect(report.backups.database).toBe(h.db.name);
      expect(report.backups.lastSuccessId).not.toBe(other.id);
    } finally {
      await h.ops.catalogue.delete(other.id);
    }
  });
});

describe('restores', () => {
  it('records the verification in the manifest, labels the safety backup, and a cancel after it names it', async () => {
    const backup = manifestOf(await (await h.ops.startBackup('http')).done);
    const target = `sw_target_${Date.now().toString(36)}`;
    dropLater.push(target);
    const admin = createSql({ url: adminDatabaseUrl(), applicationName: 'ops-test', max: 1 });
    await admin.unsafe(`create database "${target}"`);
    await admin.end();
    const targetSql = createSql({
      url: withDatabase(adminDatabaseUrl(), target),
      applicationName: 't',
      max: 1,
    });
    await targetSql`create table precious (x int)`;
    await targetSql`insert into precious values (42)`;
    await targetSql.end();

    const config = {
      ...loadConfig(opsEnv, {
        BACKUP_DIR: h.backupDir,
        OPS_RESTORE_TARGETS: 'sw_target_*',
        ...SCHEDULES_OFF,
      }),
      DATABASE_URL: h.db.url,
    };
    let runner: { cancel: (id: string, reason: string) => Promise<boolean> } | undefined;
    const ops = createOps(config, {
      sql: h.db.sql,
      names: h.names,
      // cancel the moment the safety backup is on disk, before the swap
      onUpdate: (job) => {
        if (job.kind === 'restore' && /safety backup: renaming/.test(job.progress.message ?? ''))
          void runner?.cancel(job.id, 'cancelled by test');
      },
    });
    runner = ops.runner;
    const cancelled = await (await ops.startRestore('http', { backupId: backup.id, target })).done;
    expect(cancelled.status).toBe('cancelled');
    const safetyId = /the safety backup of .* is (\S+)\)/.exec(cancelled.error ?? '')?.[1];
    expect(safetyId, cancelled.error ?? '').toBeTruthy();
    const safety = await h.ops.catalogue.get(safetyId!);
    expect(safety).toMatchObject({
      kind: 'safety',
      database: target,
      restoreJobId: cancelled.id,
      label: expect.stringContaining(`before restoring ${backup.id}`),
    });
    expect(safety!.tables['public.precious']).toBe(1);
    // the target is untouched and writable again
    const after = createSql({ url: withDatabase(adminDatabaseUrl(), target), applicationName: 't', max: 1 });
    expect(await after`select x from precious`).toEqual([{ x: 42 }]);
    await after`insert into precious values (43)`;
    await after.end();
    const verified = await h.ops.catalogue.get(backup.id);
    expect(verified!.verification).toMatchObject({ ok: true, via: 'restore', jobId: cancelled.id, target });
    await ops.runner.stop();
    expect(
      (
        await h.db.sql`select 1 from pg_database where datname like 'sw_restore_%' and datname in (
        select jsonb_array_elements(scratch)->>'name' from ops_jobs where id = ${cancelled.id})`
      ).length,
    ).toBe(0);
  }, 240_000);
});
