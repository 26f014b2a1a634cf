import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '@spywatcher/service';
import { describeServiceContract } from '@spywatcher/testing/service-contract';
import { afterAll } from 'vitest';
import { buildApp } from '../src/app.ts';
import { opsEnv } from '../src/config.ts';
import { createOps } from '../src/setup.ts';

// Nothing scheduled fires while the spawned service runs; backups (if any) land in a temp dir.
const backupDirs: string[] = [];
afterAll(() => {
  for (const dir of backupDirs) rmSync(dir, { recursive: true, force: true });
});
const backupDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'sw-ops-contract-'));
  backupDirs.push(dir);
  return dir;
};
const opsVars = (prefix: string) => ({
  BACKUP_DIR: backupDir(),
  NATS_PREFIX: prefix,
  OPS_SCHEDULE_BACKUP: 'off',
  OPS_SCHEDULE_VERIFY: 'off',
  OPS_SCHEDULE_MAINTENANCE: 'off',
  OPS_SCHEDULE_PARTITIONS: 'off',
  OPS_SCHEDULE_RETENTION: 'off',
});

describeServiceContract({
  name: 'ops',
  build: (rt) => {
    const config = { ...loadConfig(opsEnv, opsVars(rt.natsNames.prefix)), DATABASE_URL: rt.databaseUrl };
    const ops = createOps(config, { sql: rt.sql, nats: rt.nats, names: rt.natsNames });
    return buildApp({ ...rt, ops });
  },
  mainPath: fileURLToPath(new URL('../src/main.ts', import.meta.url)),
  env: ({ natsNames }) => opsVars(natsNames.prefix),
});
