/**
 * `npm run client:generate`: writes each service's OpenAPI document to libs/client/openapi/ and
 * its TypeScript types (openapi-typescript) to libs/client/src/generated/. `-- --check` writes
 * nothing and exits 1 naming the files that are stale.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString, COMMENT_HEADER, type OpenAPI3 } from 'openapi-typescript';
import { type OpenApiDocument, SERVICE_NAMES, serviceDocuments } from './documents.ts';

const CLIENT_DIR = fileURLToPath(new URL('../../libs/client/', import.meta.url));

/** Every generated file of libs/client, path relative to it and content. */
export async function renderClientFiles(docs?: Record<string, OpenApiDocument>) {
  const documents = docs ?? (await serviceDocuments());
  const files: { path: string; text: string }[] = [];
  for (const name of SERVICE_NAMES) {
    const doc = documents[name]!;
    files.push({ path: `openapi/${name}.json`, text: `${JSON.stringify(doc, null, 2)}\n` });
    const types = astToString(
      await openapiTS(doc as unknown as OpenAPI3, {
        alphabetize: true,
        // A parameter with a default may be left out: optional in requests, not required.
        defaultNonNullable: false,
      }),
    );
    files.push({
      path: `src/generated/${name}.ts`,
      text: `${COMMENT_HEADER.replace(' */', ` * Source: the ${name} service's GET /openapi.json (npm run client:generate).\n */`)}${types}`,
    });
  }
  return files;
}

/** Files whose committed content differs from what the services produce now. */
export async function staleClientFiles(files: { path: string; text: string }[]): Promise<string[]> {
  const stale: string[] = [];
  for (const f of files) {
    const current = await readFile(`${CLIENT_DIR}${f.path}`, 'utf8').catch(() => '');
    if (current !== f.text) stale.push(f.path);
  }
  return stale;
}

async function main(check: boolean): Promise<number> {
  const files = await renderClientFiles();
  const stale = await staleClientFiles(files);
  if (check) {
    if (stale.length > 0) process.stderr.write(`stale (run npm run client:generate): ${stale.join(', ')}\n`);
    return stale.length > 0 ? 1 : 0;
  }
  for (const f of files) if (stale.includes(f.path)) await writeFile(`${CLIENT_DIR}${f.path}`, f.text);
  process.stdout.write(`libs/client: ${stale.length} of ${files.length} files rewritten\n`);
  return 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.includes('--check'));
