import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// One run covers every project so the README's test command ends with vitest's count of what ran.
// Each test file gets its own database cloned from a template migrated once in globalSetup.
export default defineConfig({
  test: {
    include: [
      'apps/*/src/**/*.test.ts',
      'apps/*/test/**/*.test.ts',
      'libs/*/src/**/*.test.ts',
      'libs/*/test/**/*.test.ts',
      'tools/**/*.test.ts',
    ],
    exclude: ['**/node_modules/**'],
    globalSetup: ['libs/testing/src/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    // The migrator's migrations (`@spywatcher/migrator/migrations`); globalSetup builds the template from them.
    provide: { migrationsDir: fileURLToPath(new URL('./apps/migrator/migrations', import.meta.url)) },
  },
});
