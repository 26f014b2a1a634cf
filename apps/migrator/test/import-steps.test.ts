import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PartitionCache, type PartitionPolicy, type TransactionSql } from '@spywatcher/db';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSummary, writeLegacyFixture } from '../../../tools/legacy-fixture/fixture.ts';
import { type Batch, emptyBatch, type RejectLine } from '../src/import/batch.ts';
import { importTarget } from '../src/import/bulk.ts';
import {
  advance,
  aggregate,
  type Checkpoint,
  emptyCheckpoint,
  loadCheckpoints,
  saveCheckpoint,
} from '../src/import/checkpoints.ts';
import { convertContext } from '../src/import/convert-context.ts';
import type { UnitBatches } from '../src/import/convert-pool.ts';
import { planUnits, RANGE, schedule, type Unit } from '../src/import/plan.ts';
import {
  applyTotals,
  type ImportReport,
  importReport,
  type ProgressEvent,
  Rejects,
  retentionWarningsOf,
  TableProgress,
  tableProgress,
  tableReports,
  tokenWarnings,
} from '../src/import/report.ts';
import { openLegacySource } from '../src/import/source.ts';
import { TABLE_SPECS } from '../src/import/tables.ts';
import { unitBatches } from '../src/import/unit-batches.ts';
import { pipeline, type UnitWriter, writeUnit } from '../src/import/write.ts';

let dir: string;
let fx: FixtureSummary;
const dbs: TestDatabase[] = [];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sw-import-steps-test-'));
  fx = writeLegacyFixture({ path: join(dir, 'legacy.sqlite'), rows: 300, months: 3 });
});
afterAll(async () => {
  for (const db of dbs) await db.drop();
  rmSync(dir, { recursive: true, force: true });
});

const spec = (legacy: string) => TABLE_SPECS.find((s) => s.legacy === legacy)!;

const batch = (over: Partial<Batch> = {}): Batch => ({ ...emptyBatch(), ...over });

const reject = (id: number): RejectLine => ({
  table: 'MessageEvent',
  legacy_id: String(id),
  reason: 'missing',
  detail: 'no content',
  row: { id },
});

/** Batches from a list, as a worker would hand them over, then the empty one that ends a unit. */
function listBatches(list: Batch[]): UnitBatches & { reads: number } {
  const queue = [...list];
  const out = {
    reads: 0,
    next: async () => {
      out.reads++;
      return queue.shift() ?? batch();
    },
    close: () => {},
  };
  return out;
}

describe('checkpoints (pure)', () => {
  it('advances by a batch: counts, hash, findings, the earliest date and the last key', () => {
    const one = advance(
      emptyCheckpoint(),
      batch({ rows: 3, lastKey: '9', hash: 5n, findings: { future_date: 1 }, minMs: 20 }),
    );
    const two = advance(
      one,
      batch({ rows: 2, rejects: [reject(10)], hash: 7n, findings: { future_date: 2 }, minMs: 10 }),
    );
    expect(two).toEqual({
      lastKey: '9',
      imported: 5n,
      rejected: 1n,
      hash: 12n,
      findings: { future_date: 3 },
      minMs: 10,
    });
  });

  it('sums a table over its units only (plain key, id ranges, periods)', () => {
    const cp = (n: bigint, minMs: number | null): Checkpoint => ({
      ...emptyCheckpoint(),
      imported: n,
      hash: n,
      minMs,
    });
    const states = new Map([
      ['MessageEvent@20240101', cp(1n, 50)],
      ['MessageEvent#3', cp(2n, null)],
      ['MessageEvent#undated', cp(4n, 40)],
      ['MessageEventX', cp(8n, 1)],
      ['User', cp(16n, null)],
    ]);
    expect(aggregate(states, spec('MessageEvent'))).toMatchObject({ imported: 7n, hash: 7n, minMs: 40 });
    expect(aggregate(states, spec('User')).imported).toBe(16n);
    expect(aggregate(states, spec('Guild'))).toEqual(emptyCheckpoint());
  });
});

describe('plan', () => {
  it('plans a unit per reference table and per month of each event table, undated rows last', () => {
    const source = openLegacySource(fx.path);
    try {
      const units = planUnits(source, new Map(), join(dir, 'periods-a.sqlite'));
      for (const s of TABLE_SPECS) {
        const mine = units.filter((u) => u.spec === s);
        expect(mine.reduce((n, u) => n + u.rows, 0)).toBe(fx.tables[s.legacy]);
        if (s.kind === 'reference') expect(mine.map((u) => u.key)).toEqual([s.legacy]);
        else for (const u of mine) expect(u.key).toMatch(new RegExp(`^${s.legacy}(@2024\\d{4}|#undated)$`));
      }
      const months = units.filter((u) => u.spec.legacy === 'MessageEvent').map((u) => u.period);
      expect(months).toEqual([...months].sort((a, b) => (a ?? Infinity) - (b ?? Infinity)));
    } finally {
      source.close();
    }
  });

  it('plans id ranges without a period index (a dry run) and continues after checkpoints', () => {
    const source = openLegacySource(fx.path);
    try {
      const users = { ...emptyCheckpoint(), lastKey: 'zzzzzzzzzzzzzzzzzzzzzzzz' };
      const units = planUnits(source, new Map([['User', users]]), null);
      expect(units.find((u) => u.key === 'User')).toMatchObject({ after: users.lastKey, rows: 0 });
      const message = units.filter((u) => u.spec.legacy === 'MessageEvent');
      expect(message.map((u) => u.key)).toEqual(['MessageEvent#0']);
      expect(message[0]).toMatchObject({ after: '-1', before: RANGE, rows: fx.tables.MessageEvent });
    } finally {
      source.close();
    }
  });

  it('schedules reference tables in order, then event units costliest first', () => {
    const u = (legacy: string, rows: number): Unit => ({
      spec: spec(legacy),
      key: legacy,
      after: null,
      before: null,
      rows,
    });
    const plan = [
      u('User', 5),
      u('Guild', 9),
      u('PresenceEvent', 100),
      u('MessageEvent', 20),
      u('JoinEvent', 150),
    ];
    const { reference, events } = schedule(plan);
    expect(reference.map((x) => x.key)).toEqual(['User', 'Guild']);
    expect(events.map((x) => x.key)).toEqual(['MessageEvent', 'JoinEvent', 'PresenceEvent']);
  });
});

describe('report (pure)', () => {
  it('emits start once, progress per batch and done after the last unit of a table', () => {
    const events: ProgressEvent[] = [];
    const [report] = tableReports(new Map());
    const p = new TableProgress(report!, 7, 2, (e) => events.push(e));
    p.start();
    p.start();
    p.count(batch({ rows: 4, rejects: [reject(1)] }));
    p.progress();
    p.unitDone();
    p.count(batch({ rows: 2 }));
    p.unitDone();
    expect(events.map((e) => [e.phase, e.done, e.total, e.rejected])).toEqual([
      ['start', 0, 7, 0],
      ['progress', 5, 7, 1],
      ['done', 7, 7, 1],
    ]);
    expect(report).toMatchObject({ read: 7, imported: 6, rejected: 1 });
  });

  it('sums each table of the plan for its progress', () => {
    const u = (key: string, rows: number): Unit => ({
      spec: spec('TypingEvent'),
      key,
      after: null,
      before: null,
      rows,
    });
    const progress = tableProgress(
      [u('TypingEvent@20240101', 3), u('TypingEvent#undated', 2)],
      tableReports(new Map()),
    );
    expect([...progress.keys()]).toEqual(['TypingEvent']);
    const events: ProgressEvent[] = [];
    const p = tableProgress([u('a', 3), u('b', 2)], tableReports(new Map()), (e) => events.push(e)).get(
      'TypingEvent',
    )!;
    p.start();
    expect(events[0]).toMatchObject({ table: 'TypingEvent', total: 5 });
  });

  it('keeps rejects in the file, or 20 samples without one', () => {
    const sampled = new Rejects(null);
    sampled.keep(batch({ rejects: Array.from({ length: 25 }, (_, i) => reject(i)) }));
    expect(sampled.samples.map((r) => r.legacy_id)).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
    const file = join(dir, 'rejects.ndjson');
    const filed = new Rejects(file);
    filed.truncate();
    filed.keep(batch({ rejects: [reject(1), reject(2)] }));
    filed.keep(batch());
    expect(
      readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).legacy_id),
    ).toEqual(['1', '2']);
    expect(filed.samples).toEqual([]);
  });

  it('reports totals from the checkpoints, this run and before', () => {
    const earlier = new Map([
      ['Guild', { ...emptyCheckpoint(), imported: 3n, rejected: 1n, minMs: Date.UTC(2024, 0, 1) }],
    ]);
    const reports = tableReports(earlier);
    expect(reports.find((r) => r.table === 'Guild')).toMatchObject({
      read: 0,
      totalImported: 3,
      totalRejected: 1,
      oldest: '2024-01-01T00:00:00.000Z',
    });
    applyTotals(reports, new Map([...earlier, ['GuildX', { ...emptyCheckpoint(), imported: 2n }]]));
    expect(reports.find((r) => r.table === 'Guild')?.totalImported).toBe(3);
    applyTotals(reports, new Map([['Guild', { ...emptyCheckpoint(), imported: 5n }]]));
    expect(reports.find((r) => r.table === 'Guild')).toMatchObject({
      totalImported: 5,
      totalRejected: 0,
      oldest: null,
    });
  });

  it('gives the exit code, totals and rounded figures', () => {
    const reports = tableReports(new Map());
    Object.assign(reports[0]!, { read: 10, imported: 8, rejected: 2, totalRejected: 5 });
    const rejects = new Rejects('/tmp/r.ndjson');
    const base = {
      from: 'f',
      sourceKey: 'k',
      dryRun: false,
      reports,
      rejects,
      maxRejects: 5,
      verified: true,
      warnings: [],
      elapsedMs: 2000.4444,
      cpuMs: 1234.56,
      phases: { copy: 1500.4 },
    };
    const r: ImportReport = importReport(base);
    expect(r).toMatchObject({
      rows: 10,
      imported: 8,
      rejected: 5,
      rejectFile: '/tmp/r.ndjson',
      seconds: 2,
      cpuSeconds: 1.235,
      phases: { copy: 1.5 },
      rowsPerSecond: 5,
      exitCode: 0,
    });
    expect(importReport({ ...base, maxRejects: 4 }).exitCode).toBe(3);
    expect(importReport({ ...base, maxRejects: 4, verified: false }).exitCode).toBe(4);
    // a dry run counts this run's rejects; none means no reject file
    expect(importReport({ ...base, dryRun: true }).rejected).toBe(2);
    Object.assign(reports[0]!, { rejected: 0, totalRejected: 0 });
    expect(importReport(base).rejectFile).toBeNull();
  });

  it('warns when tokens were left out and when retention would drop imported history', () => {
    const reports = tableReports(new Map());
    expect(tokenWarnings(reports)).toEqual([]);
    reports[0]!.findings = { tokens_not_imported: 2 };
    expect(tokenWarnings(reports)[0]).toContain('of 2 user(s)');
    const message = reports.find((r) => r.table === 'MessageEvent')!;
    message.oldest = '2024-01-01T00:00:00.000Z';
    const policy: PartitionPolicy = {
      table: 'message_events',
      period: 'week',
      retentionDays: 30,
      dropImported: true,
    };
    const now = Date.UTC(2024, 1, 15);
    expect(retentionWarningsOf([policy], reports, now)[0]).toContain(
      'message_events (from 2024-01-01, retention 30 days)',
    );
    expect(retentionWarningsOf([{ ...policy, dropImported: false }], reports, now)).toEqual([]);
    expect(retentionWarningsOf([{ ...policy, retentionDays: 60 }], reports, now)).toEqual([]);
  });
});

describe('pipeline', () => {
  it('writes every batch in order and ends at the empty one', async () => {
    const written: string[] = [];
    const batches = listBatches([
      batch({ rows: 1, lastKey: '1' }),
      batch({ rejects: [reject(2)], lastKey: '2' }),
    ]);
    await pipeline(
      batches,
      async (b) => void written.push(b.lastKey!),
      () => null,
    );
    expect(written).toEqual(['1', '2']);
    expect(batches.reads).toBe(3);
  });

  it('stops between batches with the reason, once the last write settled', async () => {
    let stop: string | null = null;
    const written: string[] = [];
    const batches = listBatches([batch({ rows: 1, lastKey: '1' }), batch({ rows: 1, lastKey: '2' })]);
    const run = pipeline(
      batches,
      async (b) => {
        written.push(b.lastKey!);
        stop = 'import cancelled';
      },
      () => stop,
    );
    await expect(run).rejects.toThrow('import cancelled');
    expect(written).toEqual(['1']);
  });

  it('fails with the first write error', async () => {
    const batches = listBatches([batch({ rows: 1 }), batch({ rows: 1 }), batch({ rows: 1 })]);
    let writes = 0;
    const run = pipeline(
      batches,
      async () => {
        writes++;
        throw new Error('copy refused');
      },
      () => null,
    );
    await expect(run).rejects.toThrow('copy refused');
    expect(writes).toBe(1);
  });
});

describe('checkpoints and the write step against PostgreSQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    dbs.push(db);
  });

  it('saves and loads checkpoints exactly (a hash past 2^64, findings, the earliest date)', async () => {
    const cp: Checkpoint = {
      lastKey: '42',
      imported: 12n,
      rejected: 3n,
      hash: 2n ** 70n + 5n,
      findings: { future_date: 2 },
      minMs: Date.UTC(2024, 0, 2, 3, 4, 5, 678),
    };
    await db.sql.begin((tx) =>
      saveCheckpoint(tx as TransactionSql, 'src-a', 'MessageEvent@20240101', cp, false),
    );
    await db.sql.begin((tx) =>
      saveCheckpoint(tx as TransactionSql, 'src-a', 'User', emptyCheckpoint(), true),
    );
    await db.sql.begin((tx) => saveCheckpoint(tx as TransactionSql, 'src-b', 'User', cp, true));
    const loaded = await loadCheckpoints(db.sql, 'src-a');
    expect([...loaded.keys()].sort()).toEqual(['MessageEvent@20240101', 'User']);
    expect(loaded.get('MessageEvent@20240101')).toEqual(cp);
    expect(loaded.get('User')).toEqual(emptyCheckpoint());
  });

  it('bulk-loads a period no run started, and inserts batch by batch into one that was', async () => {
    const source = openLegacySource(fx.path);
    try {
      const units = planUnits(source, new Map(), join(dir, 'periods-b.sqlite'));
      const [first, second] = units.filter(
        (u) => u.spec.legacy === 'TypingEvent' && typeof u.period === 'number',
      );
      const ctx = convertContext(source, Date.now(), null);
      const started = new Map([[second!.key, emptyCheckpoint()]]);
      const logged: string[] = [];
      const writer: UnitWriter = {
        sql: db.sql,
        sourceKey: 'src-w',
        checkpoints: started,
        cache: new PartitionCache(),
        rejects: new Rejects(join(dir, 'write-rejects.ndjson')),
        time: () => {},
        log: (line) => logged.push(line),
        stopReason: () => null,
      };
      const reports = tableReports(new Map());
      const tally = tableProgress(units, reports).get('TypingEvent')!;
      for (const unit of [first!, second!]) {
        const batches = unitBatches(
          { db: source.db, pool: null, ctx, limit: 7, withCopy: true },
          unit,
          emptyCheckpoint(),
        );
        try {
          const final = await writeUnit(writer, unit, emptyCheckpoint(), batches, tally);
          expect(Number(final.imported + final.rejected)).toBe(unit.rows);
        } finally {
          batches.close();
        }
      }
      const [{ n } = { n: 0 }] = await db.sql<{ n: number }[]>`select count(*)::int as n from typing_events`;
      const saved = await loadCheckpoints(db.sql, 'src-w');
      expect(n).toBe(Number(saved.get(first!.key)!.imported + saved.get(second!.key)!.imported));
      const done = await db.sql<{ key: string; completed: boolean }[]>`
        select source_table as key, completed from import_checkpoints where source_key = 'src-w' order by 1`;
      expect(done.map((k) => [k.key, k.completed])).toEqual(
        [first!.key, second!.key].sort().map((key) => [key, true]),
      );
      // the first period got a month partition of its own (bulk.ts, importTarget)
      const month = importTarget('typing_events', first!.period!).name;
      const [{ rows } = { rows: -1 }] = await db.sql<{ rows: number }[]>`
        select count(*)::int as rows from ${db.sql(month)}`;
      expect(rows).toBe(Number(saved.get(first!.key)!.imported));
      expect(reports.find((r) => r.table === 'TypingEvent')!.read).toBe(first!.rows + second!.rows);
      expect(logged).toEqual([]);
    } finally {
      source.close();
    }
  });
});
