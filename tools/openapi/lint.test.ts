import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { OPERATION_IDS as INGEST } from '@spywatcher/ingest/operation-ids';
import { OPERATION_IDS as MIGRATOR } from '@spywatcher/migrator/operation-ids';
import { OPERATION_IDS as OPS } from '@spywatcher/ops/operation-ids';
import { OPERATION_IDS as SEARCH } from '@spywatcher/search/operation-ids';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenApiDocument, SERVICE_NAMES, type ServiceName, serviceDocuments } from './documents.ts';

const REDOCLY = fileURLToPath(new URL('../../node_modules/.bin/redocly', import.meta.url));
const IDS: Record<ServiceName, Record<string, string>> = {
  ingest: INGEST,
  search: SEARCH,
  migrator: MIGRATOR,
  ops: OPS,
};

let docs: Record<ServiceName, OpenApiDocument>;
let dir: string;
beforeAll(async () => {
  docs = await serviceDocuments();
  dir = await mkdtemp(join(tmpdir(), 'sw-openapi-lint-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface LintReport {
  totals: { errors: number; warnings: number; ignored: number };
  problems: { ruleId: string; message: string; location: { pointer: string }[] }[];
}

describe('OpenAPI documents', () => {
  it.each(SERVICE_NAMES)('%s: redocly lint, recommended rules: 0 errors, 0 warnings', async (name) => {
    const file = join(dir, `${name}.json`);
    await writeFile(file, JSON.stringify(docs[name]));
    const { stdout } = await promisify(execFile)(
      REDOCLY,
      ['lint', file, '--extends=recommended', '--format=json'],
      {
        maxBuffer: 16 * 1024 * 1024,
        // No usage report and no update check: CI has no business with either.
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      },
    ).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
    const report = JSON.parse(stdout) as LintReport;
    const problems = report.problems.map((p) => `${p.ruleId} ${p.location[0]?.pointer}: ${p.message}`);
    expect(problems).toEqual([]);
    expect(report.totals).toEqual({ errors: 0, warnings: 0, ignored: 0 });
  });

  it.each(SERVICE_NAMES)(
    '%s: every operation has an operationId, and every listed one is an operation',
    (name) => {
      const operations = Object.entries(docs[name].paths).flatMap(([path, item]) =>
        Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
      );
      for (const key of Object.keys(IDS[name]))
        expect(operations, 'a stale OPERATION_IDS entry').toContain(key);
      const ids = Object.values(docs[name].paths).flatMap((item) =>
        Object.values(item).map((op) => (op as { operationId?: string }).operationId),
      );
      expect(ids.filter((id) => !id)).toEqual([]);
      expect(new Set(ids).size).toBe(ids.length);
    },
  );
});
