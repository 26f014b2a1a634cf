/**
 * `npm start`: find or start PostgreSQL and NATS, migrate the database and create partitions,
 * run the four services, wait until each answers /ready, and stop everything on Ctrl-C.
 * Every failure is told in two lines (what is wrong, what to run), never a stack trace.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { databaseNameOf, redactUrl } from '@spywatcher/db';
import { redactServers } from '@spywatcher/service';
import { StartFailure } from './start/failure.ts';
import { resolveNats } from './start/nats.ts';
import { resolvePostgres } from './start/postgres.ts';
import { prepareSchema } from './start/schema.ts';
import { SCOPES } from './start/scopes.ts';
import { startServices } from './start/services.ts';
import { readSettings, SERVICES, type StartSettings, USAGE } from './start/settings.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const say = (line: string) => process.stdout.write(`${line}\n`);

/** A development token with every scope, unless the user configured authentication. */
function developmentToken(env: NodeJS.ProcessEnv): string | undefined {
  if (env.AUTH_TOKENS || env.AUTH_DISABLED === 'true') return undefined;
  return `dev-${randomBytes(16).toString('hex')}`;
}

const WHAT = {
  ingest: 'stores events',
  search: 'message search, timelines, analytics',
  migrator: 'schema, partitions, legacy imports',
  ops: 'backups, restores, database health',
} as const;

function summary(
  settings: StartSettings,
  databaseUrl: string,
  token: string | undefined,
  ownData: boolean,
): string {
  const lines = [
    '',
    `ready: ${SERVICES.map((s) => s.name).join(', ')} on database ${databaseNameOf(databaseUrl)}`,
    ...SERVICES.map(
      (s) => `  ${s.name.padEnd(9)} http://127.0.0.1:${settings.ports[s.name]}/docs   ${WHAT[s.name]}`,
    ),
    token
      ? `development token (every scope, this run only): ${token}\n  use it in /docs (Authorize) or as: curl -H "Authorization: Bearer ${token}" ...`
      : 'authentication: as AUTH_TOKENS / AUTH_DISABLED say',
    `Ctrl-C stops everything${ownData ? `; the data stays in ${settings.dataDirShown}/ (npm start -- --fresh starts clean)` : ''}.`,
  ];
  return lines.join('\n');
}

/** What to stop on the way out, in reverse order of starting: services, then NATS, then PostgreSQL. */
const started: (() => Promise<void>)[] = [];
let exiting: Promise<never> | undefined;

/** Stops what was started, then exits; a second call (a signal during the clean-up) waits for the first. */
function exit(code: number): Promise<never> {
  exiting ??= (async () => {
    if (started.length > 0) say('npm start: stopping');
    for (const stop of started.reverse()) await stop().catch(() => {});
    if (started.length > 0) say('npm start: stopped');
    process.exit(code);
  })();
  return exiting;
}

async function main(): Promise<void> {
  const settings = readSettings(process.argv.slice(2), process.env, root);
  if (settings.help) {
    say(USAGE);
    return;
  }
  const postgres = await resolvePostgres(settings);
  if (postgres.stop) started.push(postgres.stop);
  say(`npm start: PostgreSQL  ${postgres.how}: ${redactUrl(postgres.url)}`);
  const nats = await resolveNats(settings);
  if (nats.stop) started.push(nats.stop);
  say(`npm start: NATS        ${nats.how}: ${redactServers(nats.url)}`);
  say(`npm start: schema      ${await prepareSchema(postgres.url)}`);

  const token = developmentToken(process.env);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: postgres.url,
    NATS_URL: nats.url,
    // The services' own info lines (one per request) would bury what npm start says.
    LOG_LEVEL: process.env.LOG_LEVEL || 'warn',
    ...(token ? { AUTH_TOKENS: JSON.stringify([{ name: 'dev', token, scopes: SCOPES }]) } : {}),
  };
  say(`npm start: starting ${SERVICES.map((s) => `${s.name} (:${settings.ports[s.name]})`).join(', ')}`);
  const services = startServices(env, root, settings.ports, token);
  started.push(services.stop);
  services.onExit((name, code, signal) => {
    const variable = `${name.toUpperCase()}_PORT`;
    say(
      `npm start: ${name} exited (${signal ?? code}); stopping the others. Port taken? ${variable}=<port> npm start`,
    );
    void exit(1);
  });
  await services.ready;
  if (exiting) return; // a service exited, or Ctrl-C, while the others were starting
  say(summary(settings, postgres.url, token, Boolean(postgres.stop || nats.stop)));
}

// A closed terminal (SIGHUP) must still stop the servers npm start runs, and writing to it then
// fails: such errors must not end the clean-up half way.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void exit(0));
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});
try {
  await main();
} catch (error) {
  if (error instanceof StartFailure) {
    process.stderr.write(`npm start: ${error.message}\n  ${error.hint}\n`);
  } else {
    process.stderr.write(`npm start: ${(error as Error).message ?? String(error)}\n`);
  }
  await exit(1);
}
