import { startService } from '@spywatcher/service';
import { buildApp } from './app.ts';

await startService({
  name: 'migrator',
  defaultPort: 3003,
  env: {},
  build: async (rt) => ({ app: await buildApp({ ...rt, loggerInstance: rt.logger }) }),
});
