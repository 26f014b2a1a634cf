import { startService } from '@spywatcher/service';
import { buildApp } from './app.ts';

await startService({
  name: 'ops',
  defaultPort: 3004,
  env: {},
  build: async (rt) => ({ app: await buildApp({ ...rt, loggerInstance: rt.logger }) }),
});
