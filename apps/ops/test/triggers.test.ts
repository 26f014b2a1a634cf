import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { subjects } from '@spywatcher/events';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupManifest } from '../src/catalogue.ts';
import { createOffsite } from '../src/offsite.ts';
import { startSchedule } from '../src/schedule.ts';
import { startBackground } from '../src/setup.ts';
import { type Harness, harness, seed } from './helpers.ts';

let h: Harness;
beforeAll(async () => {
  h = await harness();
  await seed(h.db.sql, 50);
});
afterAll(async () => {
  await h?.close();
});

async function request(action: string, body: unknown = {}) {
  const reply = await h.nats.request(subjects(h.names).ops(action), JSON.stringify(body), {
    timeout: 10_000,
  });
  return reply.json<{
    ok: boolean;
    job?: { id: string };
    progressSubject?: string;
    error?: { code: string; message: string };
    plan?: { steps: unknown[] };
  }>();
}

describe('NATS requests', () => {
  it('starts a backup and publishes its progress on <prefix>.ops.jobs.<id>', async () => {
    const seen: { id: string; status: string; progress: { percent: number } }[] = [];
    const sub = h.nats.subscribe(`${h.names.prefix}.ops.jobs.>`, {
      callback: (_e, m) => {
        seen.push(m.json());
      },
    });
    const reply = await request('backup');
    expect(reply.ok, JSON.stringify(reply)).toBe(true);
    const id = reply.job!.id;
    expect(reply.progressSubject).toBe(subjects(h.names).opsJob(id));
    const job = await h.waitJob(id);
    expect(job).toMatchObject({ status: 'succeeded', trigger: 'nats', kind: 'backup' });
    await h.nats.flush();
    await new Promise((r) => setTimeout(r, 100));
    sub.unsubscribe();
    const mine = seen.filter((s) => s.id === id);
    expect(mine[0]!.status).toBe('running');
    expect(mine.some((s) => s.progress.percent > 0 && s.progress.percent < 100)).toBe(true);
    expect(mine.at(-1)!.status).toBe('succeeded');

    const verify = await request('verify');
    expect(verify.ok).toBe(true);
    expect((await h.waitJob(verify.job!.id)).status).toBe('succeeded');
  });

  it('answers maintenance plans and refusals', async () => {
    const plan = await request('maintenance', { kind: 'analyze', dryRun: true });
    expect(plan.ok).toBe(true);
    expect(Array.isArray(plan.plan!.steps)).toBe(true);
    const started = await request('maintenance.analyze', { tables: ['guilds'] });
    expect(started.ok).toBe(true);
    expect((await h.waitJob(started.job!.id)).status).toBe('succeeded');
    expect(await request('maintenance', { kind: 'drop-everything' })).toMatchObject({
      ok: false,
      error: { code: 'BAD_REQUEST' },
    });
    expect(await request('maintenance', { kind: 'vacuum', tables: ['nope'] })).toMatchObject({
      ok: false,
      error: { code: 'BAD_REQUEST' },
    });
    expect(await request('restore', { backupId: 'x', target: 'y' })).toMatchObject({
      ok: false,
      error: { code: 'NOT_ALLOWED' },
    });
    expect(await request('verify', { backupId: '../../etc/passwd' })).toMatchObject({
      ok: false,
      error: { code: 'BAD_REQUEST' },
    });
    expect(await request('frobnicate')).toMatchObject({ ok: false, error: { code: 'UNKNOWN_ACTION' } });
  });
});

describe('schedule and restarts', () => {
  it('runs scheduled jobs from cron expressions', async () => {
    const ops = await h.variant({});
    const schedule = startSchedule(
      ops,
      { backup: null, verify: null, maintenance: null, partitions: '* * * * * *', retention: '* * * * * *' },
      () => {},
    );
    try {
      expect(Object.keys(schedule.next()).sort()).toEqual(['partitions', 'retention']);
      const jobs = await (async () => {
        for (let i = 0; i < 300; i++) {
          const list = await ops.runner.list({ status: 'succeeded' });
          const kinds = new Set(list.filter((j) => j.trigger === 'schedule').map((j) => j.kind));
          if (kinds.has('partitions') && kinds.has('retention')) return list;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error('scheduled jobs did not run');
      })();
      expect(jobs.find((j) => j.kind === 'partitions')?.result).toHaveProperty('actions');
      expect(jobs.find((j) => j.kind === 'retention')?.result).toMatchObject({
        deleted: [],
        jobRecordsDeleted: 0,
      });
    } finally {
      schedule.stop();
      await ops.runner.stop();
    }
  });

  it('a job cut off by a restart is marked failed with the reason at start-up', async () => {
    const [row] = await h.db.sql<{ id: string }[]>`
      insert into ops_jobs (id, kind, status, trigger, exclusive_key, started_at)
      values (gen_random_uuid(), 'backup', 'running', 'http', 'backup-crashed', now()) returning id
    `;
    const ops = await h.variant({});
    const bg = await startBackground(ops, { names: h.names, log: () => {} });
    await bg.stop();
    expect(bg.interrupted).toBe(1);
    const job = await ops.runner.get(row!.id);
    expect(job).toMatchObject({ status: 'failed', error: expect.stringMatching(/interrupted/) });
    expect(job!.finishedAt).not.toBeNull();
  });
});

describe('off-site copies', () => {
  it('keeps the local backup when the off-site copy fails, and the health report says so', async () => {
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    const ops = await h.variant({
      OPS_S3_BUCKET: 'backups',
      OPS_S3_ENDPOINT: 'http://127.0.0.1:1',
      OPS_S3_FORCE_PATH_STYLE: 'true',
    });
    const job = await (await ops.startBackup('http')).done;
    expect(job.status, job.error ?? '').toBe('succeeded');
    const manifest = (job.result as { backup: BackupManifest }).backup;
    expect(manifest.offsite).toBeUndefined();
    expect(manifest.offsiteError).toBeTruthy();
    expect(await readFile(ops.catalogue.dumpPath(manifest.id))).toHaveLength(manifest.sizeBytes);
    const report = await ops.health();
    expect(report.findings.find((f) => f.check === 'backup_offsite')).toMatchObject({
      severity: 'warning',
      subject: manifest.id,
    });
  });

  it('uploads each backup to S3-compatible storage and checks its sha256', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sw-s3rver-'));
    const server = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: dir,
      configureBuckets: [{ name: 'backups' }],
    });
    const { port } = await server.run();
    const endpoint = `http://127.0.0.1:${port}`;
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    try {
      const ops = await h.variant({
        OPS_S3_BUCKET: 'backups',
        OPS_S3_ENDPOINT: endpoint,
        OPS_S3_FORCE_PATH_STYLE: 'true',
        OPS_S3_PREFIX: 'test/',
      });
      const job = await (await ops.startBackup('http')).done;
      expect(job.status, job.error ?? '').toBe('succeeded');
      const manifest = (job.result as { backup: BackupManifest }).backup;
      expect(manifest.offsite).toMatchObject({
        bucket: 'backups',
        key: `test/${manifest.file}`,
        checksumVerified: true,
      });
      const s3 = new S3Client({
        endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      });
      const head = await s3.send(new HeadObjectCommand({ Bucket: 'backups', Key: manifest.offsite!.key }));
      expect(head.ContentLength).toBe(manifest.sizeBytes);
      expect(head.Metadata?.sha256).toBe(manifest.sha256);
      const object = await s3.send(new GetObjectCommand({ Bucket: 'backups', Key: manifest.offsite!.key }));
      const remote = createHash('sha256')
        .update(Buffer.from(await object.Body!.transformToByteArray()))
        .digest('hex');
      const local = createHash('sha256')
        .update(await readFile(ops.catalogue.dumpPath(manifest.id)))
        .digest('hex');
      expect(remote).toBe(local);
      // a file larger than one part goes up as a multipart upload and is still checked
      const big = join(dir, 'big.dump');
      const bytes = randomBytes(11 * 1024 * 1024);
      await writeFile(big, bytes);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const offsite = createOffsite({
        bucket: 'backups',
        endpoint,
        region: 'us-east-1',
        prefix: 'multi/',
        forcePathStyle: true,
        verify: true,
        partSizeBytes: 5 * 1024 * 1024,
      });
      const copy = await offsite.upload(big, { ...manifest, file: 'big.dump', sha256 });
      expect(copy).toMatchObject({ key: 'multi/big.dump', checksumVerified: true });
      await expect(
        offsite.upload(big, { ...manifest, file: 'bad.dump', sha256: manifest.sha256 }),
      ).rejects.toThrow(/does not match/);

      await ops.deleteBackup(manifest.id);
      await expect(
        s3.send(new HeadObjectCommand({ Bucket: 'backups', Key: manifest.offsite!.key })),
      ).rejects.toThrow();
      s3.destroy();
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
