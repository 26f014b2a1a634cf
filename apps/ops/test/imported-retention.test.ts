import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setRetention } from '@spywatcher/db';
import { EVENT_TYPES, eventTable } from '@spywatcher/events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLegacyFixture } from '../../../tools/legacy-fixture/fixture.ts';
import { healthReport } from '../src/health.ts';
import { startSchedule } from '../src/schedule.ts';
import { type Harness, harness } from './helpers.ts';

// The migrator's import CLI, run as an operator runs it (a process: apps do not import apps).
const IMPORT_CLI = fileURLToPath(new URL('../../migrator/src/import-cli.ts', import.meta.url));
const TABLES = EVENT_TYPES.map((t) => eventTable(t));

let h: Harness;
let dir: string;
beforeAll(async () => {
  h = await harness();
  dir = mkdtempSync(join(tmpdir(), 'sw-ops-imported-'));
});
afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function eventRows(): Promise<number> {
  let n = 0;
  for (const t of TABLES) {
    const [r] = await h.db.sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${t}`);
    n += r!.n;
  }
  return n;
}

describe('scheduled partition upkeep and imported history', () => {
  it('keeps every imported row of two years ago, retention set or not', async () => {
    const now = new Date();
    const start = new Date(Date.UTC(now.getUTCFullYear() - 2, now.getUTCMonth(), 1));
    const fx = writeLegacyFixture({ path: join(dir, 'old.sqlite'), rows: 500, months: 2, start, seed: 4 });
    const imported = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [IMPORT_CLI, '--from', fx.path], {
        env: { ...process.env, DATABASE_URL: h.db.url },
        stdio: 'ignore',
      });
      child.on('close', resolve);
    });
    expect(imported).toBe(0);
    const rows = await eventRows();
    expect(rows).toBe(
      Object.entries(fx.tables).reduce((n, [t, c]) => (/Event|Reaction/.test(t) ? n + c : n), 0),
    );
    // An operator's retention on every table, without letting it drop imported history.
    for (const t of TABLES) await setRetention(h.db.sql, t, 30);

    const ops = await h.variant({});
    const schedule = startSchedule(
      ops,
      { backup: null, verify: null, maintenance: null, partitions: '* * * * * *', retention: null },
      () => {},
    );
    try {
      let job: Awaited<ReturnType<typeof ops.runner.list>>[number] | undefined;
      for (let i = 0; i < 300 && !job; i++) {
        job = (await ops.runner.list({ status: 'succeeded' })).find((j) => j.kind === 'partitions');
        if (!job) await new Promise((r) => setTimeout(r, 100));
      }
      expect(job?.trigger).toBe('schedule');
      const actions = (job!.result as { actions: { action: string; partition: string }[] }).actions;
      expect(actions.filter((a) => a.action === 'drop')).toEqual([]);
      expect(actions.filter((a) => a.action === 'keep').length).toBeGreaterThan(0);
    } finally {
      schedule.stop();
      await ops.runner.stop();
    }
    expect(await eventRows()).toBe(rows);
    // Kept imported partitions are not reported as waiting to be dropped.
    const report = (await healthReport(h.db.sql, null)) as { findings: { check: string }[] };
    expect(report.findings.filter((f) => f.check === 'partition_retention')).toEqual([]);
  });
});
