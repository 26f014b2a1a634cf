import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createEvent, type SpywatcherEvent, subjects } from '@spywatcher/events';
import {
  createTestDatabase,
  type TestDatabase,
  testNatsNames,
  testNatsUrl,
  UNREACHABLE_DATABASE_URL,
} from '@spywatcher/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleEvents } from '../../../libs/events/test/fixtures.ts';
import type { DeadLetterReplayReport } from '../src/dead-letters.ts';
import { createIngest, type Ingest, storedIdCounts, waitFor } from './harness.ts';

const cli = fileURLToPath(new URL('../src/replay-dead-letters-cli.ts', import.meta.url));
const run = promisify(execFile);
const names = testNatsNames('dl');

let db: TestDatabase;
let broken: Ingest;
let working: Ingest;

beforeAll(async () => {
  db = await createTestDatabase();
  // the same stream and durable, first with the database out of reach
  broken = await createIngest(UNREACHABLE_DATABASE_URL, { names });
  working = await createIngest(db.url, { names });
});
afterAll(async () => {
  await broken?.close();
  await working?.close();
  await db?.drop();
});

const join = () => createEvent('join', sampleEvents().join.data) as SpywatcherEvent;

async function replay(...args: string[]): Promise<DeadLetterReplayReport> {
  const { stdout } = await run(process.execPath, [cli, ...args], {
    env: {
      ...process.env,
      NATS_URL: testNatsUrl(),
      NATS_STREAM: names.stream,
      NATS_SUBJECT_PREFIX: names.prefix,
    },
  });
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

describe('replay-dead-letters', () => {
  it('re-submits the events whose cause is fixed, reports the invalid ones, skips conflicts', async () => {
    const js = jetstream(broken.nc);
    const s = subjects(names);
    // 1. undeliverable: the database is out of reach for every delivery
    await broken.startConsumer({ maxDeliver: 1 });
    const lost = join();
    await js.publish(s.event('join'), JSON.stringify(lost), { msgID: lost.id });
    // 2. invalid: stays invalid whatever is fixed
    await js.publish(s.event('join'), JSON.stringify({ ...join(), data: { user_id: 'not a snowflake' } }));
    const jsm = await jetstreamManager(broken.nc);
    const dead = `${names.stream}_DEAD`;
    await waitFor('two dead letters', async () =>
      (await jsm.streams.info(dead)).state.messages === 2 ? true : undefined,
    );
    await broken.consumer!.stop();

    // 3. conflict: the id stored, then sent again with another time
    await working.startConsumer();
    const first = join();
    await js.publish(s.event('join'), JSON.stringify(first), { msgID: first.id });
    await waitFor('stored', async () => ((await storedIdCounts(db.sql)).has(first.id) ? true : undefined));
    const again = { ...first, occurred_at: new Date(Date.parse(first.occurred_at) - 1000).toISOString() };
    await js.publish(s.event('join'), JSON.stringify(again), { msgID: `${first.id}-again` });
    await waitFor('three dead letters', async () =>
      (await jsm.streams.info(dead)).state.messages === 3 ? true : undefined,
    );

    const dry = await replay(
      '--type',
      'join',
      '--since',
      new Date(Date.now() - 3600_000).toISOString(),
      '--dry-run',
    );
    expect(dry).toMatchObject({
      dry_run: true,
      scanned: 3,
      resubmitted: 1,
      still_invalid: 1,
      skipped_conflicts: 1,
    });
    expect(dry.actions.find((a) => a.action === 'resubmit')).toMatchObject({
      id: lost.id,
      reason: 'undeliverable',
    });
    expect(dry.actions.find((a) => a.action === 'still_invalid')?.why).toMatch(/user_id/);
    expect((await storedIdCounts(db.sql)).has(lost.id)).toBe(false);

    const none = await replay('--type', 'message', '--dry-run');
    expect(none).toMatchObject({ scanned: 0, resubmitted: 0 });

    const done = await replay('--type', 'join');
    expect(done).toMatchObject({ dry_run: false, resubmitted: 1 });
    await waitFor('the re-submitted event stored', async () =>
      (await storedIdCounts(db.sql)).get(lost.id) === 1 ? true : undefined,
    );
  }, 300_000); // four CLI processes: slow to start on a loaded machine

  it('refuses a malformed --since with a usage error', async () => {
    await expect(replay('--since', 'yesterday')).rejects.toMatchObject({
      code: 64,
      stderr: expect.stringMatching(/--since must be an ISO time/),
    });
  }, 120_000);
});
