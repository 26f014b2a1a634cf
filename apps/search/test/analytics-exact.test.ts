import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type Fragment, join, type Queryable } from '@spywatcher/db';
import type { EventType } from '@spywatcher/events';
import { projectionStatus, startProjectionRunner, startRebuildJob } from '@spywatcher/projections';
import { createAuth, type ServiceInstance } from '@spywatcher/service';
import { createTestDatabase, type TestDatabase, testNatsUrl } from '@spywatcher/testing';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { type AnalyticsParams, FINAL } from '../src/projections/analytics.ts';
import { PROJECTIONS } from '../src/projections/definitions.ts';
import { insertEvents, type SeedEvent } from './analytics-seed.ts';

// The read-model and raw versions of a question share their final step (analytics.test.ts), so
// comparing them cannot catch a rounding or ordering slip in it. Here the final steps are checked
// against the README's definitions computed in exact rational arithmetic (BigInt), and the
// endpoints against hand-made cases: rounding at large ratios, thresholds between the exact and
// the rounded value, and ties cut by `limit`.

/** n / d (integers, d > 0) rounded half away from zero to `k` decimals. */
function rounded(n: bigint, d: bigint, k: number): number {
  const scale = 10n ** BigInt(k);
  const q = (2n * (n < 0n ? -n : n) * scale + d) / (2n * d);
  return Number(n < 0n ? -q : q) / Number(scale);
}

/** A fraction n / d with d > 0. */
type Fraction = [n: bigint, d: bigint];
const compare = ([a, b]: Fraction, [c, d]: Fraction) => {
  const x = a * d - c * b;
  return x > 0n ? 1 : x < 0n ? -1 : 0;
};
const abs = ([n, d]: Fraction): Fraction => [n < 0n ? -n : n, d];
const atLeast = (x: Fraction, threshold: number) => compare(x, decimal(threshold)) >= 0;
/** A JSON number as the exact decimal fraction the query receives. */
function decimal(x: number): Fraction {
  const [whole, fraction = ''] = String(x).split('.');
  return [BigInt(whole! + fraction), 10n ** BigInt(fraction.length)];
}
/** Largest exact value first, then the smaller user id. */
const byValueThenUser = <T extends { key: Fraction; userId: string }>(a: T, b: T) =>
  compare(b.key, a.key) || (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0);

/** Deterministic pseudo-random integers in [0, n). */
function randoms(seed: number) {
  let a = seed >>> 0;
  return (n: number) => {
    a = (Math.imul(a, 1_664_525) + 1_013_904_223) >>> 0;
    return Math.floor((a / 2 ** 32) * n);
  };
}

let db: TestDatabase;
let nats: NatsConnection;
let app: ServiceInstance;

/** Runs a FINAL step over literal rows of `t` (one VALUES list, columns named). */
async function final(
  step: (sql: Queryable, a: AnalyticsParams) => Fragment,
  columns: string[],
  rows: (string | number)[][],
  params: Partial<AnalyticsParams>,
) {
  const sql = db.sql;
  const values = rows.map(
    (r) =>
      sql`(${join(
        sql,
        r.map((v) => (typeof v === 'string' ? sql`${v}::text` : sql`${v}::bigint`)),
      )})`,
  );
  const result = await sql`
    with t(${join(
      sql,
      columns.map((c) => sql(c)),
    )}) as (values ${join(sql, values)})
    ${step(sql, { from: '2026-10-01', to: '2026-10-28', limit: 100_000, ...params })}`;
  return JSON.parse(JSON.stringify([...result]));
}

const ANALYST = 'analyst-token-0123456789';
const id = (i: number) => `3${String(i).padStart(17, '0')}`;

beforeAll(async () => {
  db = await createTestDatabase();
  nats = await connect({ servers: testNatsUrl() });
  app = await buildApp({
    sql: db.sql,
    nats,
    auth: createAuth([{ name: 'analyst', token: ANALYST, scopes: ['analytics:read'] }]),
    metrics: new Registry(),
    logger: false,
  });
});

afterAll(async () => {
  await app?.close();
  await nats?.close();
  await db?.drop();
});

describe('analytics final steps against the definitions in exact arithmetic', () => {
  it('behavior-shifts rounds change from the exact average, filters and orders on the exact value', async () => {
    // Windows whose earlier part is 21 days (whole weeks), 13 and 34 days.
    for (const [from, to, days] of [
      ['2026-09-29', '2026-10-26', 21n],
      ['2026-10-01', '2026-10-20', 13n],
      ['2026-10-01', '2026-11-10', 34n],
    ] as const) {
      const rows: [string, number, number][] = [];
      for (let r = 0; r <= 40; r++) for (let e = 0; e <= 40; e++) rows.push([id(r * 100 + e), r, e]);
      // Large ratios: 300 this week against an average of 35/34 (5 events in 34 days) and similar.
      rows.push([id(9001), 300, 5], [id(9002), 1000, 1], [id(9003), 0, 3000], [id(9004), 2999, 3000]);
      for (const threshold of [0, 1, 0.3333, 290.5]) {
        const expected = rows
          .filter(([, r, e]) => r + e > 0)
          .map(([userId, r, e]) => {
            const e7 = 7n * BigInt(e);
            const change: Fraction = [BigInt(r) * days - e7, e7 > days ? e7 : days];
            return { userId, r, e7, change, key: abs(change) };
          })
          .filter((x) => atLeast(x.key, threshold))
          .sort(byValueThenUser)
          .map((x) => ({
            userId: x.userId,
            thisWeek: x.r,
            previousWeeklyAverage: rounded(x.e7, days, 3),
            change: rounded(...x.change, 3),
            direction: x.change[0] >= 0n ? 'up' : 'down',
          }));
        const got = await final(FINAL.behaviorShifts, ['user_id', 'recent', 'earlier'], rows, {
          from,
          to,
          threshold,
        });
        expect(got).toEqual(expected);
      }
    }
  });

  it('behavior-shifts: 300 events against an average of 35/34 is a change of 290.429, below 290.5', async () => {
    const window = { from: '2026-10-01', to: '2026-11-10' };
    const rows = [[id(1), 300, 5]];
    const columns = ['user_id', 'recent', 'earlier'];
    // (300 − 35/34) / (35/34) = 290.4286; from the rounded average 1.029 it was 290.545.
    expect(await final(FINAL.behaviorShifts, columns, rows, { ...window, threshold: 290.4 })).toEqual([
      { userId: id(1), thisWeek: 300, previousWeeklyAverage: 1.029, change: 290.429, direction: 'up' },
    ]);
    expect(await final(FINAL.behaviorShifts, columns, rows, { ...window, threshold: 290.5 })).toEqual([]);
    // A threshold between the exact value and its rounding: 290.4287 > 290.42857… although 290.429 shows.
    expect(await final(FINAL.behaviorShifts, columns, rows, { ...window, threshold: 290.4287 })).toEqual([]);
  });

  it('ghosts orders on the exact ratio, then the user id, however the ratios round', async () => {
    const rows: [string, number, number][] = [];
    for (let t = 10; t <= 70; t++) for (let m = 0; m <= 70; m++) rows.push([id(10_000 - t * 100 - m), t, m]);
    const expected = rows
      .filter(([, t, m]) => t > m)
      .map(([userId, t, m]) => ({ userId, t, m, key: [BigInt(t), BigInt(Math.max(m, 1))] as Fraction }))
      .sort(byValueThenUser)
      .map((x) => ({ userId: x.userId, typing: x.t, messages: x.m, ratio: rounded(...x.key, 3) }));
    const got = await final(FINAL.ghosts, ['user_id', 'typing', 'messages'], rows, { minTyping: 10 });
    expect(got).toEqual(expected);
  });

  it('client-drift rounds distance and shares once and compares the exact distance', async () => {
    const next = randoms(7);
    const rows = Array.from({ length: 1500 }, (_, i) => [id(i), ...Array.from({ length: 6 }, () => next(5))]);
    const clients = ['desktop', 'web', 'mobile'];
    const columns = ['user_id', ...clients.flatMap((c) => [`recent_${c}`, `earlier_${c}`])];
    for (const threshold of [0, 0.5, 0.3333]) {
      const expected = rows
        .map((row) => {
          const [userId, ...v] = row as [string, ...number[]];
          const r = clients.map((_, i) => BigInt(v[2 * i]!));
          const e = clients.map((_, i) => BigInt(v[2 * i + 1]!));
          const rt = r.reduce((a, x) => a + x, 0n);
          const et = e.reduce((a, x) => a + x, 0n);
          const s = clients.reduce(
            (a, _, i) => a + (r[i]! * et > e[i]! * rt ? r[i]! * et - e[i]! * rt : e[i]! * rt - r[i]! * et),
            0n,
          );
          if (rt === 0n || et === 0n) return undefined;
          const mix = (x: bigint[], total: bigint) =>
            Object.fromEntries(
              clients
                .map((c, i) => [c, rounded(x[i]!, total, 3), r[i]! + e[i]!] as const)
                .filter(([, , seen]) => seen > 0n)
                .sort(([a], [b]) => (a < b ? -1 : 1))
                .map(([c, share]) => [c, share]),
            );
          return {
            userId,
            rt,
            et,
            key: [s, 2n * rt * et] as Fraction,
            thisWeek: mix(r, rt),
            previousWeeks: mix(e, et),
          };
        })
        .filter((x) => x !== undefined && atLeast(x.key, threshold))
        .map((x) => x!)
        .sort(byValueThenUser)
        .map((x) => ({
          userId: x.userId,
          distance: rounded(...x.key, 3),
          thisWeek: x.thisWeek,
          previousWeeks: x.previousWeeks,
        }));
      expect(expected.length).toBeGreaterThan(100);
      expect(await final(FINAL.clientDrift, columns, rows, { threshold })).toEqual(expected);
    }
  });

  it('suspicion scores the exact sum of its components, rounded once', async () => {
    const next = randoms(11);
    const rows = Array.from({ length: 2000 }, (_, i) => [
      id(i),
      next(12),
      next(80),
      next(14),
      next(25),
      next(7),
      next(9),
    ]);
    const columns = ['user_id', 'messages', 'typing', 'fast', 'multi', 'roles', 'deleted'];
    const min = (a: bigint, b: bigint) => (a < b ? a : b);
    for (const minScore of [0, 50, 61.87]) {
      const expected = rows
        .map((row) => {
          const [userId, ...v] = row as [string, ...number[]];
          const [messages, typing, fast, multi, roles, deleted] = v.map(BigInt) as bigint[];
          const mm = messages! + 1n;
          // In hundredths of a point: the README's formulas, each as a fraction over mm.
          const ghost = min(3000n * mm, 300n * typing!);
          const deletions = min(1000n * mm, 1000n * deleted!);
          const whole = min(2500n, 250n * fast!) + min(2000n, 100n * multi!) + min(1500n, 300n * roles!);
          const key: Fraction = [ghost + deletions + whole * mm, 100n * mm];
          const points = (n: bigint, d = 1n) => rounded(n, 100n * d, 2);
          return {
            userId,
            key,
            score: rounded(...key, 2),
            components: {
              ghost: { points: points(ghost, mm), typing: Number(typing), messages: Number(messages) },
              fastReactions: { points: points(min(2500n, 250n * fast!)), count: Number(fast) },
              multiClient: { points: points(min(2000n, 100n * multi!)), count: Number(multi) },
              roleChurn: { points: points(min(1500n, 300n * roles!)), count: Number(roles) },
              deletions: {
                points: points(deletions, mm),
                count: Number(deleted),
                messages: Number(messages),
              },
            },
          };
        })
        .filter((x) => atLeast(x.key, minScore))
        .sort(byValueThenUser)
        .map(({ key: _, ...x }) => x);
      expect(expected.length).toBeGreaterThan(10);
      expect(await final(FINAL.suspicion, columns, rows, { minScore })).toEqual(expected);
    }
  });

  it('reaction-stats rounds the mean delta once, from the exact sum', async () => {
    // Per user: deltas 1 and 2 → 1.5; 1, 1, 2 → 1.333 → 1.3; 0, 0, 1 with a half at 0.3333 → 0.3.
    const rows = [
      [id(1), 1, 1],
      [id(1), 2, 1],
      [id(2), 1, 2],
      [id(2), 2, 1],
      [id(3), 0, 2],
      [id(3), 1, 1],
      [id(4), 5, 19],
      [id(4), 6, 1],
    ];
    const got = await final(FINAL.reactionStats, ['user_id', 'delta_ms', 'n'], rows, { minReactions: 1 });
    expect(got.map((x: { userId: string; avgMs: number }) => [x.userId, x.avgMs])).toEqual([
      [id(4), 5.1],
      [id(2), 1.3],
      [id(3), 0.3],
      [id(1), 1.5],
    ]);
  });
});

describe('analytics endpoints on hand-made cases', { timeout: 180_000 }, () => {
  const window = { from: '2026-10-01', to: '2026-11-10' };
  const guild = '10000000000000009';
  let n = 0;
  const at = (day: string, i: number) => new Date(Date.parse(`${day}T00:00:00Z`) + (i % 1440) * 60_000);
  const message = (user: string, day: string): SeedEvent => {
    const occurredAt = at(day, n);
    const eid = `00000000-0000-7000-8000-${(++n).toString(16).padStart(12, '0')}`;
    return {
      type: 'message',
      occurredAt,
      row: [eid, occurredAt, `7${n}`, user, 'u', '20000000000000901', 'c', guild, 'hello'],
    };
  };
  const typing = (user: string, day: string): SeedEvent => {
    const occurredAt = at(day, n);
    const eid = `00000000-0000-7000-8000-${(++n).toString(16).padStart(12, '0')}`;
    return { type: 'typing', occurredAt, row: [eid, occurredAt, user, 'u', '20000000000000901', 'c', guild] };
  };
  const times = <T>(k: number, f: (i: number) => T) => Array.from({ length: k }, (_, i) => f(i));
  const ghost = (user: string, t: number, m: number) => [
    ...times(t, () => typing(user, '2026-10-15')),
    ...times(m, () => message(user, '2026-10-16')),
  ];
  // 67/63 = 1.06349 and 84/79 = 1.06329 both show 1.063; 40/20 and 20/10 are the same ratio.
  const [A, B, C, D, S] = [id(9), id(1), id(5), id(3), id(7)];

  async function get(name: string, query: Record<string, string | number>) {
    const qs = new URLSearchParams(
      Object.entries({ ...window, ...query }).map(([k, v]): [string, string] => [k, String(v)]),
    );
    const res = await app.inject({
      url: `/v1/analytics/${name}?${qs}`,
      headers: { authorization: `Bearer ${ANALYST}` },
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().items as Record<string, unknown>[];
  }

  async function expectAnswers() {
    const all = await get('ghosts', {});
    expect(all.map((x) => [x.userId, x.ratio])).toEqual([
      [D, 2],
      [C, 2],
      [A, 1.063],
      [B, 1.063],
    ]);
    // limit cuts through each tie the same way every time.
    expect((await get('ghosts', { limit: 1 })).map((x) => x.userId)).toEqual([D]);
    expect((await get('ghosts', { limit: 3 })).map((x) => x.userId)).toEqual([D, C, A]);
    const shifts = { threshold: 290.4, limit: 1 };
    expect(await get('behavior-shifts', shifts)).toEqual([
      { userId: S, thisWeek: 300, previousWeeklyAverage: 1.029, change: 290.429, direction: 'up' },
    ]);
    expect(await get('behavior-shifts', { threshold: 290.5 })).toEqual([]);
  }

  it('answer ties and large ratios as defined, live and after a rebuild with counted progress', async () => {
    const events = [
      ...ghost(A, 67, 63),
      ...ghost(B, 84, 79),
      ...ghost(C, 40, 20),
      ...ghost(D, 20, 10),
      // 5 events in the 34 days before the last 7, 300 in them: an average of 35/34.
      ...times(5, (i) => message(S, `2026-10-0${i + 2}`)),
      ...times(300, (i) => message(S, `2026-11-0${4 + (i % 6)}`)),
    ];
    // Two transactions: planner statistics taken after the first are stale for the second.
    await insertEvents(db.sql, events.slice(0, 200), 10_000);
    await db.sql`analyze`;
    await insertEvents(db.sql, events.slice(200), 10_000);
    const runner = startProjectionRunner({
      sql: db.sql,
      projections: PROJECTIONS,
      batchSize: 97,
      pollMs: 600_000,
    });
    await runner.runUntilCaughtUp(170_000);
    await runner.stop();
    await expectAnswers();

    const counts = new Map<EventType, number>();
    for (const type of ['message', 'typing'] as EventType[]) {
      const [row] = await db.sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${type}_events`);
      counts.set(type, row!.n);
    }
    const expectedOf = (types: readonly EventType[]) => types.reduce((a, t) => a + (counts.get(t) ?? 0), 0);
    for (const projection of PROJECTIONS) {
      const { done } = await startRebuildJob(db.sql, projection, { batchSize: 50, concurrency: 2 });
      const job = await done;
      expect(job.status, job.error ?? '').toBe('succeeded');
      const events = expectedOf(projection.types);
      expect({ done: job.eventsDone, total: job.eventsTotal, report: job.report?.events }).toEqual({
        done: events,
        total: events,
        report: events,
      });
      // The checkpoints carry every event folded into the rebuilt model, not only the tail's.
      const [status] = await projectionStatus(db.sql, [projection]);
      for (const cp of status!.checkpoints)
        expect([cp.type, cp.eventsApplied]).toEqual([cp.type, counts.get(cp.type) ?? 0]);
    }
    await expectAnswers();
  });
});
