import { startService } from '@spywatcher/service';
import { buildApp } from './app.ts';

await startService({
  name: 'ingest',
  defaultPort: 3001,
  env: {},
  build: async (rt) => ({ app: await buildApp({ ...rt, loggerInstance: rt.logger }) }),
});
