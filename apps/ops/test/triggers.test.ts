import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { headers } from '@nats-io/transport-node';
import { createSql } from '@spywatcher/db';
import { subjects } from '@spywatcher/events';
import { JobTable } from '@spywatcher/jobs';
import { adminDatabaseUrl } from '@spywatcher/testing';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupManifest } from '../src/catalogue.ts';
import { createOffsite } from '../src/offsite.ts';
import { startSchedule } from '../src/schedule.ts';
import { startBackground } from '../src/setup.ts';
import { type Harness, harness, seed, TOKENS } from './helpers.ts';

let h: Harness;
beforeAll(async () => {
  h = await harness();
  await seed(h.db.sql, 50);
});
afterAll(async () => {
  await h?.close();
});

async function request(action: string, body: unknown = {}, token: string | null = TOKENS.writer) {
  const hdrs = headers();
  if (token) hdrs.set('Authorization', `Bearer ${token}`);
  const reply = await h.nats.request(subjects(h.names).ops(action), JSON.stringify(body), {
    timeout: 10_000,
    headers: hdrs,
  });
  return reply.json<{
    ok: boolean;
    job?: { id: string; requestedBy: string | null };
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
    expect(job).toMatchObject({
      status: 'succeeded',
      trigger: 'nats',
      kind: 'backup',
      requestedBy: 'writer',
    });
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

  it('refuses requests without an ops:write token, as HTTP does, and starts nothing', async () => {
    const before = (await h.ops.runner.list({})).length;
    for (const action of ['backup', 'verify', 'maintenance.analyze']) {
      expect(await request(action, {}, null)).toMatchObject({
        ok: false,
        error: { code: 'UNAUTHORIZED', message: expect.stringContaining('Authorization header') },
      });
      expect(await request(action, {}, 'not-a-known-token-at-all')).toMatchObject({
        ok: false,
        error: { code: 'UNAUTHORIZED', message: expect.stringContaining('unknown or revoked token') },
      });
      expect(await request(action, {}, TOKENS.reader)).toMatchObject({
        ok: false,
        error: { code: 'FORBIDDEN', message: expect.stringContaining('"ops:write"') },
      });
    }
    expect(await request('maintenance', { kind: 'analyze', dryRun: true }, TOKENS.none)).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
    expect((await h.ops.runner.list({})).length).toBe(before);
  });

  it('answers maintenance plans and refusals', async () => {
    const plan = await request('maintenance', { kind: 'analyze', dryRun: true });
    expect(plan.ok).toBe(true);
    expect(Array.isArray(plan.plan!.steps)).toBe(true);
    const started = await request('maintenance.analyze', { tables: ['guilds'] });
    expect(started.ok).toBe(true);
    expect(started.job!.requestedBy).toBe('writer');
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

  it('abandon rule: a dead owner or a stale heartbeat fails the job with the reason; a live one is left alone', async () => {
    const insert = async (owner: string, heartbeatAgoS: number, key: string) => {
      const [row] = await h.db.sql<{ id: string }[]>`
        insert into ops_jobs (id, kind, status, trigger, exclusive_key, started_at, owner, heartbeat_at)
        values (gen_random_uuid(), 'backup', 'running', 'http', ${key}, now(), ${owner},
                now() - ${heartbeatAgoS} * interval '1 second')
        returning id
      `;
      return row!.id;
    };
    // pid 2^22+1 is above Linux's pid_max: that process cannot exist
    const deadHere = await insert(`${hostname()}:4194305:x`, 0, 'k-dead');
    const staleElsewhere = await insert('another-host:12:y', 120, 'k-stale');
    const aliveElsewhere = await insert('another-host:13:z', 1, 'k-alive');
    const ops = await h.variant({ OPS_JOB_ABANDON_AFTER_MS: '60000' });
    const bg = await startBackground(ops, { names: h.names, log: () => {} });
    await bg.stop();
    expect(bg.interrupted).toBe(2);
    expect(await ops.runner.get(deadHere)).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/abandoned: the ops process that ran it .* is gone/),
    });
    expect(await ops.runner.get(staleElsewhere)).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/abandoned: no heartbeat from another-host:12:y for 1[12]\d s/),
    });
    expect((await ops.runner.get(staleElsewhere))!.finishedAt).not.toBeNull();
    expect((await ops.runner.get(aliveElsewhere))!.status).toBe('running');
    await h.db.sql`update ops_jobs set status = 'failed' where id = ${aliveElsewhere}`;
  });

  it('a running job renews its heartbeat; the leftovers of a dead job are removed by whoever notices', async () => {
    const ops = await h.variant({ OPS_JOB_HEARTBEAT_MS: '100' });
    ops.runner.startHeartbeat();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { job, done } = await ops.runner.start({ kind: 'partitions', trigger: 'internal' }, () => gate);
    const beat = async () =>
      (await h.db.sql<{ at: Date }[]>`select heartbeat_at as at from ops_jobs where id = ${job.id}`)[0]!.at;
    const first = await beat();
    await new Promise((r) => setTimeout(r, 400));
    expect((await beat()).getTime()).toBeGreaterThan(first.getTime());
    release();
    await done;
    await ops.runner.stop(); // no heartbeat sweeps from here on: the sweep below is the one

    // a job killed with a scratch database and a partial file: both go at the next sweep
    const scratchDb = `sw_verify_test_${Date.now().toString(36)}`;
    const admin = createSql({ url: adminDatabaseUrl(), applicationName: 'ops-test', max: 1 });
    await admin.unsafe(`create database "${scratchDb}"`);
    const partial = join(ops.catalogue.dir, '.20260101T000000Z-00000000.dump.partial');
    await writeFile(partial, 'half a dump');
    await h.db.sql`
      insert into ops_jobs (id, kind, status, trigger, started_at, owner, heartbeat_at, scratch)
      values (gen_random_uuid(), 'verify', 'running', 'http', now(), 'gone-host:1:q', now() - interval '1 hour',
              ${h.db.sql.json([
                { kind: 'database', name: scratchDb },
                { kind: 'file', path: partial },
                // never touched: not a scratch name, not inside BACKUP_DIR
                { kind: 'database', name: h.db.name },
                { kind: 'file', path: '/etc/hostname' },
              ] as never)})
    `;
    const swept = await ops.runner.sweep();
    expect(swept.abandoned).toHaveLength(1);
    expect(swept.cleaned).toBe(4);
    const [{ n }] =
      (await admin`select count(*)::int as n from pg_database where datname = ${scratchDb}`) as unknown as [
        { n: number },
      ];
    await admin.end();
    expect(n).toBe(0);
    await expect(stat(partial)).rejects.toThrow(/ENOENT/);
    await expect(stat('/etc/hostname')).resolves.toBeTruthy();
  });

  it('a cancel requested on the row (by any instance) reaches the owner at its next heartbeat', async () => {
    const ops = await h.variant({ OPS_JOB_HEARTBEAT_MS: '100' });
    ops.runner.startHeartbeat();
    try {
      const { job, done } = await ops.runner.start(
        { kind: 'partitions', trigger: 'internal' },
        (ctx) =>
          new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
      );
      const other = new JobTable({ sql: h.db.sql, table: 'ops_jobs', label: 'ops' });
      expect(await other.requestCancel(job.id)).toBe(true);
      expect(await done).toMatchObject({ status: 'cancelled', error: 'cancelled on request' });
      expect((await ops.runner.get(job.id))!.status).toBe('cancelled');
    } finally {
      await ops.runner.stop();
    }
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
