import { readdir } from 'node:fs/promises';
import { createSql, withDatabase } from '@spywatcher/db';
import { loadConfig } from '@spywatcher/service';
import { adminDatabaseUrl } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropDatabase } from '../src/backups.ts';
import { type BackupManifest, retentionVictims } from '../src/catalogue.ts';
import { opsEnv } from '../src/config.ts';
import { restoreTargetListed } from '../src/restore.ts';
import { bearer, type Harness, harness, seed, TOKENS, tableChecksums } from './helpers.ts';

let h: Harness;
const dropLater: string[] = [];

beforeAll(async () => {
  h = await harness();
  await seed(h.db.sql);
});
afterAll(async () => {
  for (const name of dropLater) await dropDatabase(adminDatabaseUrl(), name);
  await h?.close();
});

async function backupViaHttp(): Promise<BackupManifest> {
  const res = await h.app.inject({ method: 'POST', url: '/v1/backups', headers: bearer(TOKENS.writer) });
  expect(res.statusCode, res.body).toBe(202);
  const { job, url } = res.json();
  expect(res.headers.location).toBe(url);
  const done = await h.waitJob(job.id);
  expect(done.status, done.error ?? '').toBe('succeeded');
  return (done.result as { backup: BackupManifest }).backup;
}

describe('backups', () => {
  let first: BackupManifest;

  it('backup → verify → restore: per-table checksums of the restored database equal the source', async () => {
    const before = await tableChecksums(h.db.sql);
    first = await backupViaHttp();
    expect(first.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(first.tables['public.guilds']).toBe(5);
    expect(first.totalRows).toBeGreaterThanOrEqual(605);
    expect(first.latestMigration?.version).toBeGreaterThanOrEqual(40);
    expect(first.serverVersion).toMatch(/^\d+/);
    const files = await readdir(h.backupDir);
    expect(files).toEqual(expect.arrayContaining([`${first.id}.dump`, `${first.id}.json`]));
    expect(files.filter((f) => f.includes('partial'))).toEqual([]);

    const verify = await h.app.inject({
      method: 'POST',
      url: `/v1/backups/${first.id}/verify`,
      headers: bearer(TOKENS.writer),
    });
    expect(verify.statusCode, verify.body).toBe(202);
    const verified = await h.waitJob(verify.json().job.id);
    expect(verified.status, verified.error ?? '').toBe('succeeded');
    const manifest = (
      await h.app.inject({ method: 'GET', url: `/v1/backups/${first.id}`, headers: bearer(TOKENS.reader) })
    ).json();
    expect(manifest.verification).toMatchObject({ ok: true, checksumOk: true, problems: [] });
    expect(manifest.verification.indexesChecked).toBeGreaterThan(5);

    const target = `sw_restored_${Date.now().toString(36)}`;
    dropLater.push(target);
    const restore = await h.app.inject({
      method: 'POST',
      url: '/v1/restores',
      headers: bearer(TOKENS.restorer),
      payload: { backupId: first.id, target },
    });
    expect(restore.statusCode, restore.body).toBe(202);
    const restored = await h.waitJob(restore.json().job.id);
    expect(restored.status, restored.error ?? '').toBe('succeeded');
    expect(restored.result).toMatchObject({ target, replacedExisting: false, safetyBackupId: null });

    const sql = createSql({
      url: withDatabase(adminDatabaseUrl(), target),
      applicationName: 'ops-test',
      max: 1,
    });
    try {
      const after = await tableChecksums(sql);
      // the job table changes while the job itself runs; everything else must be identical
      delete before['public.ops_jobs'];
      delete after['public.ops_jobs'];
      expect(Object.keys(after).length).toBeGreaterThan(10);
      expect(after).toEqual(before);
    } finally {
      await sql.end();
    }
  }, 240_000);

  it('two backup requests at once: one runs, the other answers 409 naming the running job', async () => {
    const [a, b] = await Promise.all([
      h.app.inject({ method: 'POST', url: '/v1/backups', headers: bearer(TOKENS.writer) }),
      h.app.inject({ method: 'POST', url: '/v1/backups', headers: bearer(TOKENS.writer) }),
    ]);
    const codes = [a.statusCode, b.statusCode].sort();
    expect(codes).toEqual([202, 409]);
    const accepted = a.statusCode === 202 ? a : b;
    const refused = a.statusCode === 202 ? b : a;
    expect(refused.json().error).toMatchObject({
      code: 'JOB_RUNNING',
      details: { jobId: accepted.json().job.id },
    });
    expect((await h.waitJob(accepted.json().job.id)).status).toBe('succeeded');
  });

  it('a failing pg_dump leaves no file, and the job error is pg_dump’s message without the password', async () => {
    const url = h.db.url.replace('postgres@', 'postgres:hunter2secret@');
    const ops = await h.variant({ BACKUP_LOCK_WAIT_TIMEOUT_MS: '300' }, url);
    const before = (await readdir(h.backupDir)).sort();
    const locker = await h.db.sql.reserve();
    try {
      await locker`begin`;
      await locker`lock table guilds in access exclusive mode`;
      const { job, done } = await ops.startBackup('http');
      const failed = await done;
      expect(failed.status).toBe('failed');
      expect(failed.error).toMatch(/pg_dump failed/);
      expect(failed.error).toMatch(/statement timeout|lock timeout/);
      expect(failed.error).toContain('BACKUP_LOCK_WAIT_TIMEOUT_MS');
      expect(failed.error).not.toContain('hunter2secret');
      const stored = await h.ops.runner.get(job.id);
      expect(stored?.error).toBe(failed.error);
      expect(JSON.stringify(stored)).not.toContain('hunter2secret');
    } finally {
      await locker`rollback`;
      locker.release();
    }
    expect((await readdir(h.backupDir)).sort()).toEqual(before);
  });

  it('cancelling a backup stops pg_dump and leaves no file', async () => {
    const before = (await readdir(h.backupDir)).sort();
    const locker = await h.db.sql.reserve();
    try {
      await locker`begin`;
      await locker`lock table guilds in access exclusive mode`;
      const res = await h.app.inject({ method: 'POST', url: '/v1/backups', headers: bearer(TOKENS.writer) });
      const id = res.json().job.id;
      // pg_dump is now waiting for its lock on guilds
      for (let i = 0; i < 200; i++) {
        const [w] = await h.db
          .sql`select 1 from pg_stat_activity where application_name = 'spywatcher-ops' and wait_event_type = 'Lock'`;
        if (w) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const cancel = await h.app.inject({
        method: 'POST',
        url: `/v1/jobs/${id}/cancel`,
        headers: bearer(TOKENS.writer),
      });
      expect(cancel.statusCode, cancel.body).toBe(202);
      // the answer does not wait for the job to stop: it is cancelled, or on its way there
      const answered = cancel.json().job;
      if (answered.status === 'running')
        expect(answered.progress.message).toBe('cancelling: cancelled by writer');
      else expect(answered).toMatchObject({ status: 'cancelled', error: 'cancelled by writer' });
      expect(await h.waitJob(id)).toMatchObject({ status: 'cancelled', error: 'cancelled by writer' });
    } finally {
      await locker`rollback`;
      locker.release();
    }
    expect((await readdir(h.backupDir)).sort()).toEqual(before);
  });

  it('retention keeps the newest verified backup even when it is beyond the count', async () => {
    const ops = await h.variant({ BACKUP_KEEP_COUNT: '1' });
    const verifiedId = first.id;
    const one = await (await ops.startBackup('http')).done;
    expect(one.status).toBe('succeeded');
    const ids = (await ops.catalogue.list()).map((b) => b.id);
    // keep-count 1: only the newest and the newest verified survive
    expect(ids).toHaveLength(2);
    expect(ids).toContain(verifiedId);
    expect(ids[0]).toBe((one.result as { backup: BackupManifest }).backup.id);
    expect(
      (one.result as { retention: { deleted: string[] } }).retention.deleted.length,
    ).toBeGreaterThanOrEqual(1);
  });

  it('retention by age and count (pure rule)', () => {
    const day = 86_400_000;
    const now = new Date('2026-06-30T00:00:00Z');
    const mk = (id: string, daysAgo: number, ok?: boolean) =>
      ({
        id,
        createdAt: new Date(now.getTime() - daysAgo * day).toISOString(),
        ...(ok === undefined ? {} : { verification: { ok } }),
      }) as BackupManifest;
    const list = [mk('a', 0), mk('b', 10, false), mk('c', 40, true), mk('d', 50), mk('e', 60, true)];
    expect(
      retentionVictims(list, { keepDays: 30, keepCount: 0, safetyKeepDays: 7 }, now).map((b) => b.id),
    ).toEqual(['d', 'e']);
    expect(
      retentionVictims(list, { keepDays: 365, keepCount: 2, safetyKeepDays: 7 }, now).map((b) => b.id),
    ).toEqual(['c', 'd', 'e'].filter((x) => x !== 'c'));
    expect(
      retentionVictims([mk('old', 400)], { keepDays: 30, keepCount: 0, safetyKeepDays: 7 }, now),
    ).toEqual([]);
  });

  it('restores refuse the live database and a connected one unless confirmed; an existing target gets a safety backup', async () => {
    const live = h.db.name;
    const refusedLive = await h.app.inject({
      method: 'POST',
      url: '/v1/restores',
      headers: bearer(TOKENS.restorer),
      payload: { backupId: first.id, target: live },
    });
    expect(refusedLive.statusCode).toBe(409);
    expect(refusedLive.json().error.code).toBe('CONFIRMATION_REQUIRED');
    expect(refusedLive.json().error.message).toContain('live database');

    const target = `sw_busy_${Date.now().toString(36)}`;
    dropLater.push(target);
    const admin = createSql({ url: adminDatabaseUrl(), applicationName: 'ops-test', max: 1 });
    await admin.unsafe(`create database "${target}"`);
    await admin.end();
    const other = createSql({
      url: withDatabase(adminDatabaseUrl(), target),
      applicationName: 'someone-else',
      max: 1,
    });
    await other`create table keep_me (x int)`;
    try {
      const body = { backupId: first.id, target };
      const refused = await h.app.inject({
        method: 'POST',
        url: '/v1/restores',
        headers: bearer(TOKENS.restorer),
        payload: body,
      });
      expect(refused.statusCode).toBe(409);
      expect(refused.json().error.message).toMatch(/1 open connection/);
      const wrong = await h.app.inject({
        method: 'POST',
        url: '/v1/restores',
        headers: bearer(TOKENS.restorer),
        payload: { ...body, confirm: 'nope' },
      });
      expect(wrong.statusCode).toBe(409);

      const accepted = await h.app.inject({
        method: 'POST',
        url: '/v1/restores',
        headers: bearer(TOKENS.restorer),
        payload: { ...body, confirm: target },
      });
      expect(accepted.statusCode, accepted.body).toBe(202);
      const job = await h.waitJob(accepted.json().job.id);
      expect(job.status, job.error ?? '').toBe('succeeded');
      const result = job.result as { replacedExisting: boolean; safetyBackupId: string };
      expect(result.replacedExisting).toBe(true);
      const safety = await h.ops.catalogue.get(result.safetyBackupId);
      expect(safety?.database).toBe(target);
      expect(safety?.tables['public.keep_me']).toBe(0);
    } finally {
      await other.end();
    }
  }, 240_000);

  it('rejects ids that are not backup ids (no path leaves BACKUP_DIR) and bad targets', async () => {
    for (const url of [
      '/v1/backups/..%2F..%2Fetc%2Fpasswd',
      '/v1/backups/x.json',
      '/v1/backups/20261126T000000Z-zzzzzzzz/verify',
    ]) {
      const res = await h.app.inject({
        method: url.endsWith('verify') ? 'POST' : 'GET',
        url,
        headers: bearer(TOKENS.writer),
      });
      expect(res.statusCode, url).toBe(400);
    }
    const missing = await h.app.inject({
      method: 'GET',
      url: '/v1/backups/20261126T000000Z-00000000',
      headers: bearer(TOKENS.reader),
    });
    expect(missing.statusCode).toBe(404);
    const bad = await h.app.inject({
      method: 'POST',
      url: '/v1/restores',
      headers: bearer(TOKENS.restorer),
      payload: { backupId: first.id, target: 'x"; drop database postgres; --' },
    });
    expect(bad.statusCode).toBe(400);
    const system = await h.app.inject({
      method: 'POST',
      url: '/v1/restores',
      headers: bearer(TOKENS.restorer),
      payload: { backupId: first.id, target: 'template1' },
    });
    expect(system.statusCode).toBe(400);
  });

  it('restores only into its own database or one OPS_RESTORE_TARGETS lists; an unlisted idle database is left alone', async () => {
    const bystander = `sw_bystander_${Date.now().toString(36)}`;
    dropLater.push(bystander);
    const admin = createSql({ url: adminDatabaseUrl(), applicationName: 'ops-test', max: 1 });
    try {
      await admin.unsafe(`create database "${bystander}"`);
      for (const payload of [
        { backupId: first.id, target: bystander },
        { backupId: first.id, target: bystander, confirm: bystander },
        { backupId: first.id, target: 'sw_restored' }, // the prefix itself is not listed
      ]) {
        const res = await h.app.inject({
          method: 'POST',
          url: '/v1/restores',
          headers: bearer(TOKENS.restorer),
          payload,
        });
        expect(res.statusCode, res.body).toBe(403);
        expect(res.json().error).toMatchObject({
          code: 'TARGET_NOT_ALLOWED',
          message: expect.stringContaining(
            `restores may replace only this service's database ("${h.db.name}") or those listed in OPS_RESTORE_TARGETS (now: sw_restored_*, sw_busy_*, sw_target_*)`,
          ),
        });
      }
      // the CLI and NATS go through the same check
      await expect(h.ops.startRestore('cli', { backupId: first.id, target: bystander })).rejects.toThrow(
        /OPS_RESTORE_TARGETS/,
      );
      const [row] = await admin<
        { n: number }[]
      >`select count(*)::int as n from pg_database where datname = ${bystander}`;
      expect(row!.n).toBe(1);
      const none = await h.variant({ OPS_RESTORE_TARGETS: '' });
      await expect(
        none.startRestore('http', { backupId: first.id, target: `sw_restored_${Date.now().toString(36)}` }),
      ).rejects.toThrow('OPS_RESTORE_TARGETS (now: none)');
    } finally {
      await admin.end();
    }
  });

  it('reads OPS_RESTORE_TARGETS as names and prefixes, refusing anything else by name', () => {
    expect(loadConfig(opsEnv, { OPS_RESTORE_TARGETS: 'a, b_*' }).OPS_RESTORE_TARGETS).toEqual(['a', 'b_*']);
    for (const bad of ['*', 'a;drop', 'x*y']) {
      expect(() => loadConfig(opsEnv, { OPS_RESTORE_TARGETS: bad })).toThrow(/OPS_RESTORE_TARGETS must list/);
    }
    expect(restoreTargetListed('b_1', ['a', 'b_*'])).toBe(true);
    expect(restoreTargetListed('b', ['a', 'b_*'])).toBe(false);
    expect(restoreTargetListed('ab', ['a'])).toBe(false);
  });

  it('lists and deletes backups', async () => {
    const list = await h.app.inject({ method: 'GET', url: '/v1/backups', headers: bearer(TOKENS.reader) });
    expect(list.statusCode).toBe(200);
    const ids: string[] = list.json().backups.map((b: BackupManifest) => b.id);
    const victim = ids.at(-1)!;
    const del = await h.app.inject({
      method: 'DELETE',
      url: `/v1/backups/${victim}`,
      headers: bearer(TOKENS.writer),
    });
    expect(del.statusCode).toBe(204);
    expect((await readdir(h.backupDir)).some((f) => f.startsWith(victim))).toBe(false);
    const again = await h.app.inject({
      method: 'DELETE',
      url: `/v1/backups/${victim}`,
      headers: bearer(TOKENS.writer),
    });
    expect(again.statusCode).toBe(404);
  });
});

describe('scopes', () => {
  const cases: [string, string, string, Record<string, unknown> | undefined][] = [
    ['GET', '/v1/backups', 'ops:read', undefined],
    ['GET', '/v1/jobs', 'ops:read', undefined],
    ['GET', '/v1/database/health', 'ops:read', undefined],
    ['POST', '/v1/backups', 'ops:write', undefined],
    ['POST', '/v1/maintenance/analyze', 'ops:write', { dryRun: true }],
    [
      'POST',
      '/v1/restores',
      'ops:restore',
      { backupId: '20261126T000000Z-00000000', target: 'sw_restored_nowhere' },
    ],
  ];
  const holders: Record<string, string[]> = {
    'ops:read': [TOKENS.reader, TOKENS.writer, TOKENS.restorer],
    'ops:write': [TOKENS.writer],
    'ops:restore': [TOKENS.restorer],
  };
  it.each(cases)('%s %s needs %s', async (method, url, scope, payload) => {
    const noToken = await h.app.inject({ method: method as 'GET', url, payload });
    expect(noToken.statusCode).toBe(401);
    for (const token of Object.values(TOKENS)) {
      const res = await h.app.inject({ method: method as 'GET', url, headers: bearer(token), payload });
      if (holders[scope]!.includes(token))
        expect([200, 202, 404, 409], `${token}: ${res.body}`).toContain(res.statusCode);
      else expect(res.statusCode, token).toBe(403);
      if (res.statusCode === 202) await h.waitJob(res.json().job.id);
    }
  });
});
