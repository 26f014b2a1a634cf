import { hostname } from 'node:os';
import { RebuildConflictError, startRebuildJob } from '@spywatcher/projections';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProjection } from '../src/projections/definitions.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

async function insertRunning(projection: string, owner: string, heartbeatAgoS: number): Promise<string> {
  const [row] = await db.sql<{ id: string }[]>`
    insert into projection_rebuilds (id, projection, status, phase, owner, heartbeat_at)
    values (gen_random_uuid(), ${projection}, 'running', 'bulk 1/4 chunks', ${owner},
            now() - ${heartbeatAgoS} * interval '1 second')
    returning id
  `;
  return row!.id;
}

describe('rebuild jobs on the job lifecycle', () => {
  it('a rebuild whose process stopped beating is failed as abandoned, and the next one runs', async () => {
    const projection = findProjection('reactions')!;
    const stale = await insertRunning(projection.name, 'another-host:12:y', 120);
    const { job, done } = await startRebuildJob(db.sql, projection, { heartbeatMs: 100 });
    expect(job.status).toBe('running');
    const [old] = await db.sql<{ status: string; error: string }[]>`
      select status, error from projection_rebuilds where id = ${stale}
    `;
    expect(old).toEqual({
      status: 'failed',
      error: expect.stringMatching(/^abandoned: no heartbeat from another-host:12:y for 1[12]\d s/),
    });
    const finished = await done;
    expect(finished.status, finished.error ?? '').toBe('succeeded');
    const [row] = await db.sql<{ owner: string; heartbeat_at: Date | null }[]>`
      select owner, heartbeat_at from projection_rebuilds where id = ${job.id}
    `;
    expect(row!.owner).toMatch(new RegExp(`^${hostname()}:${process.pid}:`));
    expect(row!.heartbeat_at).toBeInstanceOf(Date);
  });

  it('a rebuild whose process is alive elsewhere keeps its projection: the next start is refused with its id', async () => {
    const projection = findProjection('heatmap')!;
    const alive = await insertRunning(projection.name, 'another-host:13:z', 1);
    const refused = await startRebuildJob(db.sql, projection).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RebuildConflictError);
    expect((refused as RebuildConflictError).runningJobId).toBe(alive);
    const [row] = await db.sql<
      { status: string }[]
    >`select status from projection_rebuilds where id = ${alive}`;
    expect(row!.status).toBe('running');
  });
});
