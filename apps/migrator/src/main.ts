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
    }),
  }),
});
