import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '@spywatcher/service';
import { describeServiceContract } from '@spywatcher/testing/service-contract';
import { buildApp } from '../src/app.ts';
import { opsEnv } from '../src/config.ts';
import { createOps } from '../src/setup.ts';

const backupDir = mkdtempSync(join(tmpdir(), 'sw-ops-contract-'));
const schedulesOff = {
  OPS_SCHEDULE_BACKUP: 'off',
  OPS_SCHEDULE_VERIFY: 'off',
  OPS_SCHEDULE_MAINTENANCE: 'off',
  OPS_SCHEDULE_PARTITIONS: 'off',
  OPS_SCHEDULE_RETENTION: 'off',
};

describeServiceContract({
  name: 'ops',
  build: async (rt) => {
    const config = {
      ...loadConfig(opsEnv, { BACKUP_DIR: backupDir, ...schedulesOff }),
      DATABASE_URL: rt.databaseUrl,
    };
    const ops = createOps(config, { sql: rt.sql, nats: rt.nats, names: rt.natsNames });
    return buildApp({ ...rt, ops });
  },
  mainPath: fileURLToPath(new URL('../src/main.ts', import.meta.url)),
  env: (rt) => ({ BACKUP_DIR: backupDir, NATS_PREFIX: rt.natsNames.prefix, ...schedulesOff }),
});
