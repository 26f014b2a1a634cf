import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, type Harness, harness, TOKENS } from './helpers.ts';

let h: Harness;
beforeAll(async () => {
  h = await harness();
});
afterAll(async () => {
  await h?.close();
});

async function scrape(): Promise<string> {
  const res = await h.app.inject({ method: 'GET', url: '/metrics', headers: bearer(TOKENS.reader) });
  expect(res.statusCode).toBe(200);
  return res.body;
}
const sample = (body: string, name: string, labels: string) =>
  body.match(new RegExp(`^${name}\\{[^}]*${labels}[^}]*\\} (\\S+)$`, 'm'))?.[1];

describe('ops metrics for the alert rules', () => {
  it('says when the newest backup job failed, and clears it when the next one succeeds', async () => {
    const failing = await h.variant({ PG_DUMP_PATH: '/bin/false' });
    const failed = await (await failing.startBackup('http')).done;
    expect(failed.status).toBe('failed');
    let body = await scrape();
    expect(sample(body, 'spywatcher_ops_job_last_failed', 'kind="backup"')).toBe('1');
    expect(sample(body, 'spywatcher_ops_jobs_failed_last_24h', 'kind="backup"')).toBe('1');
    expect(
      sample(body, 'spywatcher_ops_job_last_success_timestamp_seconds', 'kind="backup"'),
    ).toBeUndefined();

    const ok = await (await h.ops.startBackup('http')).done;
    expect(ok.status).toBe('succeeded');
    body = await scrape();
    expect(sample(body, 'spywatcher_ops_job_last_failed', 'kind="backup"')).toBe('0');
    const at = Number(sample(body, 'spywatcher_ops_job_last_success_timestamp_seconds', 'kind="backup"'));
    expect(Math.abs(at - Date.now() / 1000)).toBeLessThan(120);
    expect(sample(body, 'spywatcher_ops_jobs_running', 'kind="backup"')).toBe('0');
  });

  it('reports the age of the oldest open transaction by application', async () => {
    const session = await h.db.sql.reserve();
    try {
      await session`begin`;
      await session`select set_config('application_name', 'metrics-test-long-tx', true)`;
      await session`select pg_sleep(1.1)`;
      const body = await scrape();
      const age = Number(
        sample(body, 'spywatcher_db_oldest_transaction_seconds', 'application="metrics-test-long-tx"'),
      );
      expect(age).toBeGreaterThanOrEqual(1);
    } finally {
      await session`rollback`;
      session.release();
    }
  });

  it('reports the file system of BACKUP_DIR and the replication state', async () => {
    const body = await scrape();
    const size = Number(sample(body, 'spywatcher_disk_size_bytes', `path="${h.backupDir}"`));
    const free = Number(sample(body, 'spywatcher_disk_free_bytes', `path="${h.backupDir}"`));
    expect(size).toBeGreaterThan(0);
    expect(free).toBeGreaterThan(0);
    expect(free).toBeLessThanOrEqual(size);
    expect(body).toMatch(/^spywatcher_db_replicas\{[^}]*\} \d+$/m);
    expect(body).toContain('# TYPE spywatcher_db_replication_lag_seconds gauge');
  });
});
