/**
 * `npm start`: migrate the database, create partitions, then run the four services against
 * the local PostgreSQL and NATS (or DATABASE_URL / NATS_URL), wait until each answers
 * /ready, and stop them all on Ctrl-C.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const services = [
  { name: 'ingest', port: 3001 },
  { name: 'search', port: 3002 },
  { name: 'migrator', port: 3003 },
  { name: 'ops', port: 3004 },
] as const;

const env = { ...process.env };
if (!env.AUTH_TOKENS && env.AUTH_DISABLED !== 'true') {
  // A development token with every scope, printed once, so the protected endpoints can be tried.
  const token = `dev-${randomBytes(16).toString('hex')}`;
  env.AUTH_TOKENS = JSON.stringify([
    {
      name: 'dev',
      token,
      scopes: [
        'events:write',
        'events:read',
        'search:read',
        'projections:write',
        'ops:read',
        'ops:write',
        'ops:restore',
        'imports:write',
      ],
    },
  ]);
  process.stdout.write(`development token (all scopes): ${token}\n`);
}

function run(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd, env, stdio: 'inherit' });
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${args.join(' ')} exited with ${code}`)),
    );
  });
}

await run(['src/cli.ts', 'migrate'], `${root}/apps/migrator`);
await run(['src/cli.ts', 'partitions', '--no-retention'], `${root}/apps/migrator`);

const children: ChildProcess[] = [];
for (const s of services) {
  const child = spawn(process.execPath, ['src/main.ts'], {
    cwd: `${root}/apps/${s.name}`,
    env: { ...env, PORT: env[`${s.name.toUpperCase()}_PORT`] ?? String(s.port) },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`${s.name} exited (${signal ?? code}); stopping the others\n`);
      void stop(1);
    }
  });
  children.push(child);
}

let stopping = false;
async function stop(code: number): Promise<void> {
  stopping = true;
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(
    children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.on('exit', r)))),
  );
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

async function waitReady(port: number): Promise<void> {
  for (let i = 0; i < 120; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/ready`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`service on port ${port} did not become ready in 60 s`);
}

try {
  await Promise.all(services.map((s) => waitReady(Number(env[`${s.name.toUpperCase()}_PORT`] ?? s.port))));
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  await stop(1);
}
process.stdout.write(
  `\nall four services are ready:\n${services
    .map((s) => `  ${s.name.padEnd(9)} http://127.0.0.1:${s.port}  (docs: /docs, OpenAPI: /openapi.json)`)
    .join('\n')}\nCtrl-C stops them.\n`,
);
