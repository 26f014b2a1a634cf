import { env, startService } from '@spywatcher/service';
import { buildApp } from './app.ts';
import { createTokenCipher, parseTokenKeys } from './import/token-cipher.ts';

await startService({
  name: 'migrator',
  defaultPort: 3003,
  env: {
    IMPORT_DIR: env.string(
      'directory POST /v1/imports reads legacy SQLite files from (unset: imports over HTTP are off)',
      '',
    ),
    IMPORT_JOB_HEARTBEAT_MS: env.int('How often a running import renews its heartbeat in import_runs', 5000, {
      min: 100,
    }),
    IMPORT_JOB_ABANDON_AFTER_MS: env.int(
      'A running import whose heartbeat is older than this is failed as abandoned by any migrator instance',
      60_000,
      { min: 1000 },
    ),
    TOKEN_ENCRYPTION_KEYS: env.custom(
      'keys encrypting the legacy OAuth tokens an import stores: comma-separated <id>:<32 bytes base64>, the first encrypts (unset: tokens are not imported)',
      new Map<string, Buffer>(),
      (raw, name) => parseTokenKeys(raw, name),
      true,
    ),
  },
  build: async (rt) => ({
    app: await buildApp({
      ...rt,
      loggerInstance: rt.logger,
      importDir: rt.config.IMPORT_DIR || undefined,
      tokens: createTokenCipher(rt.config.TOKEN_ENCRYPTION_KEYS),
      importJobs: {
        heartbeatMs: rt.config.IMPORT_JOB_HEARTBEAT_MS,
        abandonAfterMs: rt.config.IMPORT_JOB_ABANDON_AFTER_MS,
      },
    }),
  }),
});
