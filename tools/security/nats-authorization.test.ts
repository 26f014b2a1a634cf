import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { createPublisher, type PauseReply, subjects } from '@spywatcher/events';
import { natsConnectionOptions } from '@spywatcher/service';
import { createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { type NatsServer, startNatsServer } from '@spywatcher/testing/nats-server';
import { freePort } from '@spywatcher/testing/ports';
import { waitFor as waitForProbe } from '@spywatcher/testing/wait-for';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleEvents } from '../../libs/events/test/fixtures.ts';

// A private nats-server runs the shipped infra/nats/authorization.conf; the four services run
// as in production (their main.ts), each with its own NATS user. What each credential may and
// may not do is tried against that server.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const AUTHORIZATION = join(ROOT, 'infra/nats/authorization.conf');
const SERVICES = ['ingest', 'search', 'migrator', 'ops'] as const;
const USERS = ['bot', 'opsctl', ...SERVICES] as const;
type User = (typeof USERS)[number];
const OPS_TOKEN = `ops-writer-${randomBytes(12).toString('hex')}`;
const s = subjects();

const passwords = Object.fromEntries(USERS.map((u) => [u, randomBytes(12).toString('hex')])) as Record<
  User,
  string
>;
let server: NatsServer;
let db: TestDatabase;
let work: string;
const children: { name: string; child: ChildProcess; output: () => string }[] = [];
const ports = {} as Record<(typeof SERVICES)[number], number>;
const clients: NatsConnection[] = [];

async function as(user: User): Promise<NatsConnection> {
  const settings = {
    NATS_URL: server.url,
    NATS_USER: user,
    NATS_PASSWORD: passwords[user],
    NATS_TOKEN: '',
    NATS_CREDS: '',
  };
  const nc = await connect({ ...natsConnectionOptions(settings, user), name: `test-${user}` });
  clients.push(nc);
  return nc;
}

/** True once every service answers /ready 200 (PostgreSQL and NATS reachable). */
async function readyAll(): Promise<true | undefined> {
  for (const name of SERVICES) {
    const res = await fetch(`http://127.0.0.1:${ports[name]}/ready`);
    if (!res.ok) return undefined;
  }
  return true;
}

function startService(name: (typeof SERVICES)[number], port: number): void {
  ports[name] = port;
  const env = {
    ...process.env,
    DATABASE_URL: db.url,
    NATS_URL: server.url,
    NATS_USER: name,
    NATS_PASSWORD: passwords[name],
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'warn',
    AUTH_TOKENS: JSON.stringify([{ name: 'ops-admin', token: OPS_TOKEN, scopes: ['ops:read', 'ops:write'] }]),
    BACKUP_DIR: join(work, 'backups'),
    OPS_SCHEDULE_BACKUP: 'off',
    OPS_SCHEDULE_VERIFY: 'off',
    OPS_SCHEDULE_MAINTENANCE: 'off',
    OPS_SCHEDULE_PARTITIONS: 'off',
    OPS_SCHEDULE_RETENTION: 'off',
  };
  const child = spawn(process.execPath, [`apps/${name}/src/main.ts`], { cwd: ROOT, env, stdio: 'pipe' });
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  children.push({ name, child, output: () => output });
}

const waitFor = <T>(what: string, probe: () => Promise<T | undefined>, ms?: number) =>
  waitForProbe(what, probe, children, ms);

/** The server's answer to a publish: a permissions violation arrives as an async error. */
async function publishRefused(nc: NatsConnection, subject: string): Promise<string> {
  const refusal = (async () => {
    for await (const status of nc.status()) {
      const message = status.type === 'error' ? String((status as { error?: Error }).error?.message) : '';
      if (message.includes(`"${subject}"`)) return message;
    }
    return 'closed';
  })();
  nc.publish(subject, '{}');
  await nc.flush();
  return refusal;
}

/** Subscribes and reports how the subscription ended (a permissions violation closes it). */
async function subscriptionRefused(nc: NatsConnection, subject: string): Promise<string> {
  const sub = nc.subscribe(subject);
  await nc.flush();
  const closed = await sub.closed;
  return closed instanceof Error ? closed.message : 'open';
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'sw-nats-auth-'));
  // nats-server reads the variables as config values: quoted, any password is a string
  const env = Object.fromEntries(USERS.map((u) => [`NATS_${u.toUpperCase()}_PASSWORD`, `"${passwords[u]}"`]));
  server = await startNatsServer({ include: [AUTHORIZATION], env, logFile: join(work, 'nats.log') });
  db = await createTestDatabase();
  for (const name of SERVICES) startService(name, await freePort());
});

afterAll(async () => {
  for (const nc of clients) await nc.close().catch(() => {});
  await Promise.all(
    children.map(async ({ child }) => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }),
  );
  await server?.stop();
  await db?.drop();
  await rm(work, { recursive: true, force: true });
});

describe('the shipped NATS authorization', () => {
  it('lets nobody in without a user, or with a wrong password', async () => {
    await expect(connect({ servers: server.url, reconnect: false })).rejects.toThrow(
      /Authorization Violation/,
    );
    await expect(
      connect({ servers: server.url, user: 'bot', pass: 'not-the-password', reconnect: false }),
    ).rejects.toThrow(/Authorization Violation/);
  });

  it('takes the user and password from NATS_URL too', async () => {
    const settings = {
      NATS_URL: server.url.replace('nats://', `nats://search:${passwords.search}@`),
      NATS_USER: '',
      NATS_PASSWORD: '',
      NATS_TOKEN: '',
      NATS_CREDS: '',
    };
    const nc = await connect(natsConnectionOptions(settings, 'search'));
    clients.push(nc);
    expect(nc.getServer()).not.toContain(passwords.search);
    await nc.flush();
  });

  it('runs the four services, each connected with its own user', async () => {
    await waitFor('the four services ready', readyAll);
    for (const name of SERVICES) {
      const res = await fetch(`http://127.0.0.1:${ports[name]}/ready`);
      const body = (await res.json()) as { checks: Record<string, { ok: boolean }> };
      expect(body.checks.nats?.ok, name).toBe(true);
    }
  });
});

describe('the bot', () => {
  it('publishes events that ingest stores', async () => {
    await waitFor('ingest ready', readyAll);
    const bot = await as('bot');
    const event = sampleEvents().message;
    const publisher = createPublisher({ nc: bot, retries: 10, ackTimeoutMs: 5000 });
    await publisher.publish(event);
    await waitFor('the stored event', async () => {
      const rows = await db.sql`select 1 from message_events where id = ${event.id}`;
      return rows.length === 1 ? true : undefined;
    });
  });

  it('cannot ask ops for anything, even holding an ops:write token', async () => {
    const bot = await as('bot');
    const hdrs = headers();
    hdrs.set('Authorization', `Bearer ${OPS_TOKEN}`);
    for (const action of ['backup', 'verify', 'maintenance.vacuum']) {
      await expect(bot.request(s.ops(action), '{}', { timeout: 5000, headers: hdrs })).rejects.toThrow(
        `Permissions Violation for Publish to "${s.ops(action)}"`,
      );
    }
    expect(await db.sql`select id from ops_jobs`).toEqual([]);
  });

  it('cannot publish anywhere but events, nor read anything but its own replies', async () => {
    const bot = await as('bot');
    for (const subject of [
      s.ingestControl('pause'),
      s.stored('message'),
      s.dead('message'),
      s.opsJob('forged'),
      '$JS.API.STREAM.DELETE.SPYWATCHER_EVENTS',
    ]) {
      expect(await publishRefused(bot, subject)).toContain('Permissions Violation for Publish');
    }
    for (const subject of [
      s.allEvents,
      s.allStored,
      s.allOps,
      s.ingestControl('pause'),
      '_INBOX.>',
      '_INBOX.ops.>',
    ]) {
      expect(await subscriptionRefused(bot, subject)).toContain('Permissions Violation for Subscription');
    }
  });
});

describe('the ops controller', () => {
  it('starts ops jobs with a token, recorded as requested by its name, and follows their progress', async () => {
    await waitFor('ops ready', readyAll);
    const opsctl = await as('opsctl');
    const progress = opsctl.subscribe(`${s.opsJob('')}>`);
    const hdrs = headers();
    hdrs.set('Authorization', `Bearer ${OPS_TOKEN}`);
    const reply = await opsctl.request(s.ops('maintenance.analyze'), JSON.stringify({ tables: ['guilds'] }), {
      timeout: 10_000,
      headers: hdrs,
    });
    const body = reply.json<{ ok: boolean; job: { id: string; requestedBy: string } }>();
    expect(body).toMatchObject({ ok: true, job: { requestedBy: 'ops-admin' } });
    for await (const m of progress) {
      const job = m.json<{ id: string; status: string }>();
      if (job.id === body.job.id && job.status !== 'running') break;
    }
    const [row] = await db.sql`select requested_by, trigger from ops_jobs where id = ${body.job.id}`;
    expect(row).toEqual({ requested_by: 'ops-admin', trigger: 'nats' });
  });

  it('is refused by ops without a token', async () => {
    const opsctl = await as('opsctl');
    const reply = await opsctl.request(s.ops('backup'), '{}', { timeout: 10_000 });
    expect(reply.json()).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
  });

  it('cannot publish events, forge job progress or control ingest', async () => {
    const opsctl = await as('opsctl');
    for (const subject of [s.event('message'), s.opsJob('forged'), s.ingestControl('resume')]) {
      expect(await publishRefused(opsctl, subject)).toContain('Permissions Violation for Publish');
    }
  });
});

describe('the services', () => {
  it('ops may pause and resume ingest; ingest answers', async () => {
    await waitFor('services ready', readyAll);
    const ops = await as('ops');
    const replies = await ops.requestMany(
      s.ingestControl('pause'),
      JSON.stringify({ database: db.name, holder: 'nats-auth-test', leaseMs: 5000 }),
      { maxWait: 10_000, strategy: 'count', maxMessages: 1 },
    );
    const answers: PauseReply[] = [];
    for await (const m of replies) answers.push(m.json<PauseReply>());
    expect(answers).toMatchObject([{ ok: true, paused: true }]);
    ops.publish(s.ingestControl('resume'), JSON.stringify({ holder: 'nats-auth-test' }));
    await ops.flush();
  });

  it('search and migrator publish nothing; search reads only what ingest stored', async () => {
    const search = await as('search');
    const migrator = await as('migrator');
    expect(await publishRefused(search, s.event('message'))).toContain('Permissions Violation for Publish');
    expect(await publishRefused(migrator, s.stored('message'))).toContain(
      'Permissions Violation for Publish',
    );
    expect(await subscriptionRefused(search, s.allEvents)).toContain(
      'Permissions Violation for Subscription',
    );
    expect(await subscriptionRefused(migrator, s.allOps)).toContain('Permissions Violation for Subscription');
  });
});

describe('over the whole run', () => {
  it('no service met a permissions violation (the log names the ones the tests provoked)', async () => {
    const log = await readFile(join(work, 'nats.log'), 'utf8');
    const violations = log.split('\n').filter((line) => /Violation/i.test(line));
    expect(violations.some((line) => line.includes('"bot"'))).toBe(true);
    const byServices = violations.filter((line) => /spywatcher-(ingest|search|migrator|ops)/.test(line));
    expect(byServices).toEqual([]);
  });
});
