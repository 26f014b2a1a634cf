import { createSql, type Sql } from '@spywatcher/db';
import {
  type PgReplica,
  type PgServer,
  startPrimary,
  startReplica,
} from '@spywatcher/testing/postgres-replica';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { healthReport } from '../src/health.ts';

// A private primary and its streaming replica (the shared server is never reconfigured).
let primary: PgServer;
let replica: PgReplica;
let onPrimary: Sql;
let onReplica: Sql;

beforeAll(async () => {
  primary = await startPrimary();
  replica = await startReplica({ primaryUrl: primary.url, slot: 'search_replica' });
  onPrimary = createSql({ url: primary.url, applicationName: 'spywatcher-tests', max: 2 });
  onReplica = createSql({ url: replica.url, applicationName: 'spywatcher-tests', max: 2 });
}, 180_000);

afterAll(async () => {
  await onPrimary?.end({ timeout: 5 });
  await onReplica?.end({ timeout: 5 });
  await replica?.destroy();
  await primary?.destroy();
});

describe('the health report on streaming replication', () => {
  it('lists the standby of a primary with its replay lag', async () => {
    // the standby registers with the primary a moment after it starts
    let report = await healthReport(onPrimary, null);
    for (let i = 0; i < 100 && report.replication.standbys.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      report = await healthReport(onPrimary, null);
    }
    expect(report.replication.role).toBe('primary');
    expect(report.replication.standbys).toEqual([
      expect.objectContaining({ state: 'streaming', replayLagMs: expect.any(Number) }),
    ]);
    expect(report.findings.filter((f) => f.check.startsWith('replication'))).toEqual([]);
  });

  it('on the standby, reports its own lag; once its primary is gone, a critical finding', async () => {
    const report = await healthReport(onReplica, null);
    expect(report.replication).toMatchObject({
      role: 'standby',
      self: { standby: true, receiving: true, lagMs: expect.any(Number) },
      standbys: [],
    });
    await primary.stop();
    let orphaned = await healthReport(onReplica, null);
    for (let i = 0; i < 100 && orphaned.replication.self.receiving; i++) {
      await new Promise((r) => setTimeout(r, 100));
      orphaned = await healthReport(onReplica, null);
    }
    expect(orphaned.findings).toContainEqual(
      expect.objectContaining({ check: 'replication_stream', severity: 'critical' }),
    );
  });
});
