import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { collectOutput, createTestDatabase, type TestDatabase } from '@spywatcher/testing';
import { type NatsServer, startNatsServer } from '@spywatcher/testing/nats-server';
import { freePort } from '@spywatcher/testing/ports';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { natsConnectionOptions, redactServers } from '../src/nats-auth.ts';

const main = fileURLToPath(new URL('./fixtures/plain-main.ts', import.meta.url));
const none = { NATS_USER: '', NATS_PASSWORD: '', NATS_TOKEN: '', NATS_CREDS: '' };

describe('NATS credentials from the settings', () => {
  it('takes a user and password, a token, or the URL user information, and strips it from the servers', () => {
    const url = 'nats://a:4222,nats://b:4222';
    expect(
      natsConnectionOptions({ ...none, NATS_URL: url, NATS_USER: 'u', NATS_PASSWORD: 'p' }, 'x'),
    ).toEqual({
      servers: ['nats://a:4222', 'nats://b:4222'],
      inboxPrefix: '_INBOX.x',
      user: 'u',
      pass: 'p',
    });
    expect(natsConnectionOptions({ ...none, NATS_URL: url, NATS_TOKEN: 't0ken' }, 'x')).toMatchObject({
      token: 't0ken',
    });
    expect(natsConnectionOptions({ ...none, NATS_URL: 'nats://us%40r:p%3Ass@h:4222' }, 'ops')).toEqual({
      servers: ['nats://h:4222'],
      inboxPrefix: '_INBOX.ops',
      user: 'us@r',
      pass: 'p:ss',
    });
    expect(natsConnectionOptions({ ...none, NATS_URL: 'nats://s3cr3t-token@h:4222' }, 'x')).toEqual({
      servers: ['nats://h:4222'],
      inboxPrefix: '_INBOX.x',
      token: 's3cr3t-token',
    });
  });

  it('redacts passwords and tokens in logged server lists', () => {
    expect(redactServers('nats://u:pw@h:4222, nats://k:4222')).toBe('nats://u:***@h:4222,nats://k:4222');
    expect(redactServers('nats://t0ken@h:4222')).toBe('nats://***@h:4222');
    expect(redactServers('nats://h:4222')).toBe('nats://h:4222');
  });
});

describe('a service on a NATS server with users', () => {
  const password = `pw-${Math.random().toString(36).slice(2)}secret`;
  let db: TestDatabase;
  let nats: NatsServer;
  let dir: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'sw-nats-users-'));
    const users = join(dir, 'users.conf');
    writeFileSync(users, `authorization { users = [ { user: plain, password: $PLAIN_PASSWORD } ] }\n`);
    nats = await startNatsServer({ include: [users], env: { PLAIN_PASSWORD: `"${password}"` } });
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await nats?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function run(env: Record<string, string>, until: (out: string) => boolean) {
    const port = await freePort();
    const child = spawn(process.execPath, [main], {
      env: { PATH: process.env.PATH, DATABASE_URL: db.url, PORT: String(port), LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const output = collectOutput(child);
    const deadline = Date.now() + 45_000;
    while (!until(output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
    return output();
  }

  it('connects with the user and password in NATS_URL and never logs the password', async () => {
    const url = nats.url.replace('nats://', `nats://plain:${password}@`);
    const out = await run({ NATS_URL: url }, (o) => o.includes('Server listening'));
    expect(out).toContain('Server listening');
    expect(out).toContain(`"servers":"${nats.url.replace('nats://', 'nats://plain:***@')}"`);
    expect(out).not.toContain(password);
  });

  it('connects with NATS_USER and NATS_PASSWORD', async () => {
    const out = await run({ NATS_URL: nats.url, NATS_USER: 'plain', NATS_PASSWORD: password }, (o) =>
      o.includes('Server listening'),
    );
    expect(out).toContain('Server listening');
    expect(out).not.toContain(password);
  });

  it('says the server refused the credentials, naming the settings, and logs no password', async () => {
    const wrong = 'wrong-password-123';
    const out = await run({ NATS_URL: nats.url, NATS_USER: 'plain', NATS_PASSWORD: wrong }, (o) =>
      o.includes('refused the credentials'),
    );
    expect(out).toContain('the server refused the credentials (NATS_USER and NATS_PASSWORD');
    expect(out).not.toContain(wrong);
  });
});
