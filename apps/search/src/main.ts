import { startService } from '@spywatcher/service';
import { buildApp } from './app.ts';

await startService({
  name: 'search',
  defaultPort: 3002,
  env: {},
  build: async (rt) => ({ app: await buildApp({ ...rt, loggerInstance: rt.logger }) }),
});
