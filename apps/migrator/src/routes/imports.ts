import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Sql } from '@spywatcher/db';
import type { JobTable } from '@spywatcher/jobs';
import { type Auth, errorResponses, httpErrors, type ServiceInstance, Type } from '@spywatcher/service';
import { runImport } from '../import/importer.ts';
import {
  createRun,
  finishRun,
  getRun,
  importHeartbeat,
  importRuns,
  markRunning,
  progressRecorder,
} from '../import/runs.ts';
import { ImportError } from '../import/source.ts';
import type { TokenCipher } from '../import/token-cipher.ts';

export interface ImportRouteDeps {
  sql: Sql;
  auth: Auth;
  /**
   * The only directory imports may read from (IMPORT_DIR). Callers name files relative to it;
   * a path that leaves it (.., symlinks) is refused. Unset: the endpoint answers 503.
   */
  importDir?: string;
  /** Encrypts the legacy OAuth tokens (TOKEN_ENCRYPTION_KEYS); null: they are not imported. */
  tokens: TokenCipher | null;
  /** How often a running import renews its heartbeat in import_runs (IMPORT_JOB_HEARTBEAT_MS). */
  jobHeartbeatMs?: number;
  /** A run whose heartbeat is older than this is failed as abandoned (IMPORT_JOB_ABANDON_AFTER_MS). */
  jobAbandonAfterMs?: number;
}

const TableProgress = Type.Object({
  done: Type.Integer({ description: 'Rows read so far in this run' }),
  total: Type.Integer({ description: 'Rows to read in this run' }),
  rejected: Type.Integer(),
  rowsPerSecond: Type.Integer(),
});

const ImportRunSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  url: Type.String({ examples: ['/v1/imports/0b7c6f1e-8a0e-4f7c-9d61-2f3a4b5c6d7e'] }),
  status: Type.Union([
    Type.Literal('queued'),
    Type.Literal('running'),
    Type.Literal('succeeded'),
    Type.Literal('failed'),
  ]),
  sourcePath: Type.String(),
  sourceKey: Type.Union([Type.String(), Type.Null()]),
  dryRun: Type.Boolean(),
  progress: Type.Record(Type.String(), TableProgress, { description: 'Per legacy table' }),
  report: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], {
    description: 'The final report: per table rows, rejects, findings and verification',
  }),
  error: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  startedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  updatedAt: Type.String({ format: 'date-time' }),
});

const isInside = (base: string, full: string) => {
  const rel = relative(base, full);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
};

/**
 * Resolves `path` inside `dir`, following symlinks. A path that leaves the directory is refused
 * before the file system is asked, with the same answer as a missing file: the caller learns
 * nothing about files outside it.
 */
export function resolveInside(dir: string, path: string): string {
  const base = realpathSync(dir);
  const refused = () =>
    httpErrors.badRequest(
      `path: no file ${JSON.stringify(path)} in the import directory (name it relative to IMPORT_DIR)`,
    );
  const lexical = resolve(base, path);
  if (!isInside(base, lexical)) throw refused();
  let full: string;
  try {
    full = realpathSync(lexical);
  } catch {
    throw refused();
  }
  if (!isInside(base, full)) throw refused();
  return full;
}

/** Rewrites server paths under the import directory to the names callers use (relative to it). */
function relativeToImportDir(dir: string): { text: (s: string) => string; report: <T>(r: T) => T } {
  const prefix = `${realpathSync(dir)}${sep}`;
  const inJson = JSON.stringify(prefix).slice(1, -1);
  return {
    text: (s) => s.replaceAll(prefix, ''),
    report: (r) => JSON.parse(JSON.stringify(r).replaceAll(inJson, '')),
  };
}

/**
 * Import jobs: POST starts one in this process and answers 202 with its URL; the run, its
 * progress and its report live in import_runs, so GET works from any instance. A job killed
 * with its process is failed as abandoned by the next instance whose heartbeat looks, and is
 * resumed by posting the same file again (checkpoints make it continue).
 */
export function importRoutes(app: ServiceInstance, deps: ImportRouteDeps): void {
  const running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  const runs = importRuns(deps.sql);
  const heartbeat = importHeartbeat(runs, () => [...running.keys()], {
    everyMs: deps.jobHeartbeatMs,
    abandonAfterMs: deps.jobAbandonAfterMs,
  });
  app.addHook('onReady', async () => heartbeat.start());
  // Stop jobs at their next batch boundary and let them record why, before the pool closes.
  app.addHook('onClose', async () => {
    for (const job of running.values()) job.controller.abort();
    await Promise.allSettled([...running.values()].map((job) => job.done));
    await heartbeat.stop();
  });

  app.post(
    '/v1/imports',
    {
      config: { scope: 'imports:write' },
      schema: {
        tags: ['imports'],
        summary: 'Start a legacy SQLite import',
        description:
          'Imports a legacy SpyWatcher SQLite file from the import directory (IMPORT_DIR) into the event log, as a job. ' +
          'Scope `imports:write`. Posting a file again continues an interrupted import and imports nothing twice.',
        body: Type.Object(
          {
            path: Type.String({
              minLength: 1,
              maxLength: 1024,
              description: 'File name relative to IMPORT_DIR',
              examples: ['spywatcher.db'],
            }),
            dryRun: Type.Optional(Type.Boolean({ default: false, description: 'Validate and report only' })),
            verify: Type.Optional(Type.Boolean({ default: true })),
            maxRejects: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_147_483_647, default: 0 })),
          },
          { additionalProperties: false },
        ),
        response: {
          202: Type.Object({
            id: Type.String({ format: 'uuid' }),
            status: Type.Literal('queued'),
            url: Type.String(),
          }),
          ...errorResponses(400, 401, 403, 503),
        },
      },
    },
    async (request, reply) => {
      if (!deps.importDir) {
        throw httpErrors.unavailable(
          'imports over HTTP are off: set IMPORT_DIR to the directory holding legacy files',
        );
      }
      const body = request.body as { path: string; dryRun?: boolean; verify?: boolean; maxRejects?: number };
      const file = resolveInside(deps.importDir, body.path);
      const id = randomUUID();
      const rejectFile = join(
        deps.importDir,
        `${body.path.replace(/[^A-Za-z0-9._-]/g, '_')}.${id}.rejects.ndjson`,
      );
      const options = {
        dryRun: body.dryRun ?? false,
        verify: body.verify ?? true,
        maxRejects: body.maxRejects ?? 0,
      };
      await createRun(runs, { id, sourcePath: body.path, dryRun: options.dryRun, options });
      const controller = new AbortController();
      const done = execute(
        runs,
        id,
        { from: file, rejectFile, signal: controller.signal, tokens: deps.tokens, ...options },
        request.log,
        relativeToImportDir(deps.importDir),
      );
      running.set(id, { controller, done });
      void done.finally(() => running.delete(id));
      const url = `/v1/imports/${id}`;
      return reply
        .status(202)
        .header('location', url)
        .send({ id, status: 'queued' as const, url });
    },
  );

  app.get(
    '/v1/imports/:id',
    {
      config: { scope: 'imports:write' },
      schema: {
        tags: ['imports'],
        summary: 'Status, progress and report of an import',
        description: 'Scope `imports:write`.',
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: { 200: ImportRunSchema, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const run = await getRun(deps.sql, id);
      if (!run) throw httpErrors.notFound(`no import ${id}`);
      return { ...run, url: `/v1/imports/${id}` };
    },
  );
}

async function execute(
  runs: JobTable,
  id: string,
  options: Parameters<typeof runImport>[1],
  log: { error: (o: object, m: string) => void },
  paths: ReturnType<typeof relativeToImportDir>,
): Promise<void> {
  const recorder = progressRecorder(runs, id);
  try {
    await markRunning(runs, id);
    const report = await runImport(options.dryRun ? null : runs.sql, {
      ...options,
      onProgress: recorder.onProgress,
    });
    await recorder.flush();
    await finishRun(runs, id, { report: paths.report(report) });
  } catch (error) {
    await recorder.flush();
    const message =
      error instanceof ImportError ? error.message : `import failed: ${(error as Error).message}`;
    if (!(error instanceof ImportError)) log.error({ err: error, importId: id }, 'import failed');
    await finishRun(runs, id, { error: paths.text(message) }).catch(() => {});
  }
}
