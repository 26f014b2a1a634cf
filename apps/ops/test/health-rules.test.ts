import { describe, expect, it } from 'vitest';
import type { TableBloat } from '../src/bloat.ts';
import { DEFAULT_THRESHOLDS, type Finding, type HealthData, healthFindings } from '../src/health.ts';
import type { BackupAges, PartitionCoverage, ReplicationState } from '../src/health-collectors.ts';
import {
  backupAgeFindings,
  cacheHitFindings,
  connectionFindings,
  deadTupleFindings,
  healthStatus,
  longQueryFindings,
  partitionFindings,
  replicationFindings,
  sortFindings,
  tableBloatFindings,
  tableFreeSpaceFindings,
  wraparoundFindings,
} from '../src/health-rules.ts';

const MIB = 1_048_576;

const bloat = (over: Partial<TableBloat>): TableBloat => ({
  oid: 1,
  schema: 'public',
  table: 't',
  parent: null,
  sizeBytes: 200 * MIB,
  bloatBytes: 150 * MIB,
  bloatRatio: 0.75,
  deadTuples: 0,
  reusable: false,
  ...over,
});

const noBackups: BackupAges = {
  database: 'db',
  count: 0,
  safetyCount: 0,
  lastSuccessId: null,
  lastSuccessAt: null,
  lastSuccessAgeS: null,
  lastOffsiteError: null,
  lastVerifiedId: null,
  lastVerifiedAt: null,
  lastVerifiedAgeS: null,
  brokenManifests: [],
};

const primary: ReplicationState = {
  role: 'primary',
  self: { standby: false, receiving: null, lagMs: null, replayPendingBytes: null },
  standbys: [],
};

/** A database where nothing calls for a finding. */
const healthy = (): HealthData => ({
  db: { name: 'db', sizeBytes: 10 * MIB, blocksTotal: 1_000_000, cacheHitRatio: 0.999 },
  sizes: { tables: [], partitions: [], indexes: [], approximate: false },
  tableBloat: [],
  indexBloat: [],
  unused: { statsResetAt: null, indexes: [] },
  duplicates: [],
  activity: { long: [], idle: [] },
  blocking: [],
  connections: { max: 100, total: 10, byState: {}, byApplication: {} },
  vacuum: [],
  wraparound: { databaseAge: 1000, freezeMaxAge: 200_000_000, oldestTable: null, oldestTableAge: null },
  partitions: [],
  backups: { ...noBackups, lastSuccessAgeS: 3600, lastVerifiedAgeS: 3600 },
  replication: primary,
});

const checks = (findings: Finding[]) => findings.map((f) => `${f.severity}:${f.check}`);

describe('health rules (data in, findings out)', () => {
  it('finds nothing in a healthy database, which is ok', () => {
    const findings = healthFindings(healthy(), DEFAULT_THRESHOLDS, true);
    expect(findings).toEqual([]);
    expect(healthStatus(findings)).toBe('ok');
  });

  it('calls empty space bloat unless VACUUM already made it reusable', () => {
    expect(checks(tableBloatFindings([bloat({})]))).toEqual(['critical:table_bloat']);
    expect(checks(tableBloatFindings([bloat({ bloatBytes: 50 * MIB })]))).toEqual(['warning:table_bloat']);
    expect(tableBloatFindings([bloat({ bloatRatio: 0.3 })])).toEqual([]);
    expect(tableBloatFindings([bloat({ reusable: true })])).toEqual([]);
    expect(checks(tableFreeSpaceFindings([bloat({ reusable: true })]))).toEqual(['info:table_free_space']);
    expect(tableFreeSpaceFindings([bloat({ reusable: true, bloatBytes: 50 * MIB })])).toEqual([]);
    const [f] = tableBloatFindings([bloat({ table: 'p1', parent: 'events' })]);
    expect(f!.message).toBe('about 75% of p1 (partition of events) is empty space (150.0 MiB of 200.0 MiB)');
  });

  it('judges long queries against the threshold, critical at ten times it', () => {
    const q = { pid: 7, application: '', user: 'u', query: 'select 1' };
    const t = { ...DEFAULT_THRESHOLDS, longQueryMs: 1000 };
    expect(checks(longQueryFindings([{ ...q, durationS: 5 }], t))).toEqual(['warning:long_query']);
    const [f] = longQueryFindings([{ ...q, durationS: 10 }], t);
    expect(f!.severity).toBe('critical');
    expect(f!.message).toBe('query running for 10.0 s from unknown application: select 1');
  });

  it('warns from 75% of max_connections, critical from 90%', () => {
    const c = { max: 100, byState: {}, byApplication: {} };
    expect(connectionFindings({ ...c, total: 74 })).toEqual([]);
    expect(checks(connectionFindings({ ...c, total: 75 }))).toEqual(['warning:connections']);
    expect(checks(connectionFindings({ ...c, total: 90 }))).toEqual(['critical:connections']);
  });

  it('judges the cache hit ratio only once enough blocks were read', () => {
    const db = { name: 'db', sizeBytes: 0, blocksTotal: 100_000, cacheHitRatio: 0.95 };
    expect(checks(cacheHitFindings(db))).toEqual(['warning:cache_hit_ratio']);
    expect(checks(cacheHitFindings({ ...db, cacheHitRatio: 0.5 }))).toEqual(['critical:cache_hit_ratio']);
    expect(cacheHitFindings({ ...db, blocksTotal: 99_999 })).toEqual([]);
    expect(cacheHitFindings({ ...db, cacheHitRatio: null })).toEqual([]);
  });

  it('reports dead tuples past both the count and the ratio', () => {
    const v = {
      schema: 'public',
      table: 't',
      liveTuples: 10_000,
      lastVacuum: null,
      lastAutovacuum: null,
      lastAnalyze: null,
      lastAutoanalyze: null,
    };
    expect(deadTupleFindings([{ ...v, deadTuples: 9_999, deadRatio: 0.9 }])).toEqual([]);
    expect(deadTupleFindings([{ ...v, deadTuples: 10_000, deadRatio: 0.1 }])).toEqual([]);
    expect(checks(deadTupleFindings([{ ...v, deadTuples: 10_000, deadRatio: 0.5 }]))).toEqual([
      'critical:dead_tuples',
    ]);
  });

  it('warns of wraparound at a billion or twice the freeze age, naming the oldest table', () => {
    const w = { freezeMaxAge: 200_000_000, oldestTable: 'public.t', oldestTableAge: 1 };
    expect(wraparoundFindings({ ...w, databaseAge: 399_999_999 }, 'db')).toEqual([]);
    const [f] = wraparoundFindings({ ...w, databaseAge: 400_000_000 }, 'db');
    expect(f).toMatchObject({ check: 'xid_wraparound', severity: 'warning', subject: 'public.t' });
    expect(
      wraparoundFindings({ ...w, databaseAge: 1_500_000_000, oldestTable: null }, 'db')[0],
    ).toMatchObject({
      severity: 'critical',
      subject: 'db',
    });
  });

  it('finds a missing current partition, none ahead, and expired ones', () => {
    const p: PartitionCoverage = {
      table: 'message_events',
      period: 'week',
      retentionDays: 30,
      partitions: 3,
      current: true,
      ahead: 1,
      newestEndsAt: null,
      expired: [],
    };
    expect(partitionFindings([p])).toEqual([]);
    expect(checks(partitionFindings([{ ...p, current: false, ahead: 0 }]))).toEqual([
      'critical:partition_coverage',
    ]);
    expect(checks(partitionFindings([{ ...p, ahead: 0, expired: ['a', 'b'] }]))).toEqual([
      'warning:partition_coverage',
      'warning:partition_retention',
    ]);
  });

  it('finds lagging standbys and a standby that receives no WAL', () => {
    const lag = { state: 'streaming', replayLagBytes: 0 };
    expect(
      checks(
        replicationFindings({
          ...primary,
          standbys: [
            { ...lag, name: 'a', replayLagMs: 29_999 },
            { ...lag, name: 'b', replayLagMs: 30_000 },
            { ...lag, name: 'c', replayLagMs: 300_000 },
          ],
        }),
      ),
    ).toEqual(['warning:replication_lag', 'critical:replication_lag']);
    const standby: ReplicationState = {
      role: 'standby',
      self: { standby: true, receiving: false, lagMs: 60_000, replayPendingBytes: 0 },
      standbys: [],
    };
    expect(replicationFindings(standby).map((f) => [f.check, f.subject])).toEqual([
      ['replication_lag', 'this server'],
      ['replication_stream', 'this server'],
    ]);
  });

  it('judges backup ages against the thresholds', () => {
    const t = DEFAULT_THRESHOLDS;
    expect(checks(backupAgeFindings(noBackups, 'db', t))).toEqual([
      'critical:backup_age',
      'warning:backup_verified_age',
    ]);
    const fresh = { ...noBackups, lastSuccessAgeS: 3600, lastVerifiedAgeS: 3600 };
    expect(backupAgeFindings(fresh, 'db', t)).toEqual([]);
    const stale = { ...fresh, lastSuccessAgeS: (t.backupMaxAgeHours + 1) * 3600, lastOffsiteError: 'denied' };
    expect(checks(backupAgeFindings(stale, 'db', t))).toEqual([
      'warning:backup_age',
      'warning:backup_offsite',
    ]);
  });

  it('judges backup ages only with a catalogue; broken manifests always', () => {
    const d = {
      ...healthy(),
      backups: { ...noBackups, brokenManifests: [{ file: 'x.json', error: 'bad' }] },
    };
    expect(checks(healthFindings(d, DEFAULT_THRESHOLDS, false))).toEqual(['warning:backup_manifest']);
    expect(checks(healthFindings(d, DEFAULT_THRESHOLDS, true))).toEqual([
      'critical:backup_age',
      'warning:backup_manifest',
      'warning:backup_verified_age',
    ]);
  });

  it('sorts worst first, then by check, keeping a rule order; the status is the worst severity', () => {
    const f = (check: string, severity: Finding['severity'], subject = ''): Finding => ({
      check,
      severity,
      subject,
      message: '',
      action: '',
    });
    const sorted = sortFindings([
      f('b', 'info'),
      f('z', 'warning', '1'),
      f('a', 'warning'),
      f('z', 'warning', '2'),
    ]);
    expect(sorted.map((x) => `${x.check}${x.subject}`)).toEqual(['a', 'z1', 'z2', 'b']);
    expect(healthStatus([f('b', 'info')])).toBe('ok');
    expect(healthStatus(sorted)).toBe('warning');
    expect(healthStatus([...sorted, f('c', 'critical')])).toBe('critical');
  });
});
