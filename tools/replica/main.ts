/**
 * Private PostgreSQL primaries and streaming replicas on this machine, for tests, drills and
 * trying a replica out (docs/scale-out.md). Never touches a server it did not start.
 *
 *   npm run replica -- primary [--dir D] [--port P]          initdb + pg_ctl start, wal_level=replica
 *   npm run replica -- standby --from URL [--dir D] [--port P] [--slot S]
 *                                                            pg_basebackup -R of URL, started as hot standby
 *   npm run replica -- promote --dir D                       end recovery: the standby becomes a primary
 *   npm run replica -- status --url URL                      standby or primary, lag, its standbys
 *   npm run replica -- stop --dir D                          fast shutdown by the PID in postmaster.pid
 *
 * Each command prints one JSON line (the server's URL, folder and PID).
 */
import { parseArgs } from 'node:util';
import { createSql, standbyLags, standbyStatus } from '@spywatcher/db';
import { attachServer, startPrimary, startReplica } from '@spywatcher/testing/postgres-replica';

const USAGE =
  'usage: npm run replica -- primary|standby|promote|status|stop [--dir D] [--port P] [--from URL] [--slot S] [--url URL]';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    dir: { type: 'string' },
    port: { type: 'string' },
    from: { type: 'string' },
    slot: { type: 'string' },
    url: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

function fail(message: string): never {
  process.stderr.write(`replica: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function port(): number | undefined {
  if (values.port === undefined) return undefined;
  const p = Number(values.port);
  if (!Number.isInteger(p) || p < 1024 || p > 65535)
    fail(`--port must be a port from 1024 to 65535, got ${values.port}`);
  return p;
}

function required(name: 'dir' | 'from' | 'url'): string {
  const v = values[name];
  if (!v) fail(`--${name} is required for ${positionals[0]}`);
  return v;
}

const print = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);

async function status(url: string) {
  const sql = createSql({ url, applicationName: 'spywatcher-replica-tool', max: 1, connectTimeoutS: 5 });
  try {
    const [self, standbys] = await Promise.all([standbyStatus(sql), standbyLags(sql)]);
    return { url, ...self, standbys };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
try {
  switch (positionals[0]) {
    case 'primary': {
      const s = await startPrimary({ dataDir: values.dir, port: port() });
      print({ role: 'primary', url: s.url, dir: s.dataDir, pid: await s.pid() });
      break;
    }
    case 'standby': {
      const s = await startReplica({
        primaryUrl: required('from'),
        dataDir: values.dir,
        port: port(),
        slot: values.slot,
      });
      print({ role: 'standby', url: s.url, dir: s.dataDir, pid: await s.pid() });
      break;
    }
    case 'promote': {
      const s = attachServer(required('dir'));
      await s.promote();
      print({ role: 'primary', dir: s.dataDir, pid: await s.pid() });
      break;
    }
    case 'status':
      print(await status(required('url')));
      break;
    case 'stop': {
      const s = attachServer(required('dir'));
      const pid = await s.pid().catch(() => null);
      await s.stop();
      print({ stopped: pid !== null, dir: s.dataDir, pid });
      break;
    }
    default:
      fail(positionals[0] ? `unknown command ${positionals[0]}` : 'a command is required');
  }
} catch (error) {
  process.stderr.write(`replica: ${(error as Error).message}\n`);
  process.exit(1);
}
