import { env, startService } from '@spywatcher/service';
import { buildApp } from './app.ts';

await startService({
  name: 'migrator',
  defaultPort: 3003,
  env: {
    IMPORT_DIR: env.string(
      'directory POST /v1/imports reads legacy SQLite files from (unset: imports over HTTP are off)',
      '',
    ),
  },
  build: async (rt) => ({
    app: await buildApp({ ...rt, loggerInstance: rt.logger, importDir: rt.config.IMPORT_DIR || undefined }),
  }),
});
