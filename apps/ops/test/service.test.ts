import { fileURLToPath } from 'node:url';
import { describeServiceContract } from '@spywatcher/testing/service-contract';
import { buildApp } from '../src/app.ts';

describeServiceContract({
  name: 'ops',
  build: (rt) => buildApp(rt),
  mainPath: fileURLToPath(new URL('../src/main.ts', import.meta.url)),
});
