import { fileURLToPath } from 'node:url';
import { describeServiceContract } from '@spywatcher/testing/service-contract';
import { buildApp } from '../src/app.ts';

describeServiceContract({
  name: 'ingest',
  build: (rt) => buildApp({ ...rt, names: rt.natsNames }),
  mainPath: fileURLToPath(new URL('../src/main.ts', import.meta.url)),
  // The spawned service consumes this file's own stream, never the default one.
  env: ({ natsNames }) => ({ NATS_STREAM: natsNames.stream, NATS_SUBJECT_PREFIX: natsNames.prefix }),
});
