import { DEFAULT_NATS_NAMES } from '@spywatcher/events';
import { startService } from '@spywatcher/service';
import { buildApp } from './app.ts';
import { opsEnv } from './config.ts';
import { createOps, scheduleOf, startBackground } from './setup.ts';

await startService({
  name: 'ops',
  defaultPort: 3004,
  env: opsEnv,
  build: async (rt) => {
    const names = { ...DEFAULT_NATS_NAMES, prefix: rt.config.NATS_PREFIX };
    const ops = createOps(rt.config, {
      sql: rt.sql,
      nats: rt.nats,
      names,
      onError: (msg, err) => rt.logger.error({ err }, msg),
    });
    const app = await buildApp({
      ...rt,
      ops,
      diskPaths: rt.config.OPS_DISK_PATHS,
      loggerInstance: rt.logger,
    });
    const background = await startBackground(ops, {
      nats: rt.nats,
      auth: rt.auth,
      names,
      schedule: scheduleOf(rt.config),
      log: (level, msg, extra) => rt.logger[level](extra ?? {}, msg),
    });
    rt.logger.info({ backupDir: ops.catalogue.dir, schedule: background.next() }, 'ops ready');
    return { app, stop: background.stop };
  },
});
