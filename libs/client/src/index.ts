import createClient, { type Client } from 'openapi-fetch';
import type { components as IngestComponents, paths as IngestPaths } from './generated/ingest.ts';
import type { components as MigratorComponents, paths as MigratorPaths } from './generated/migrator.ts';
import type { components as OpsComponents, paths as OpsPaths } from './generated/ops.ts';
import type { components as SearchComponents, paths as SearchPaths } from './generated/search.ts';

export type {
  Client,
  IngestComponents,
  IngestPaths,
  MigratorComponents,
  MigratorPaths,
  OpsComponents,
  OpsPaths,
  SearchComponents,
  SearchPaths,
};

export interface ClientOptions {
  /** Where the service listens, e.g. http://127.0.0.1:3002. */
  baseUrl: string;
  /** A bearer token from AUTH_TOKENS holding the scopes of the endpoints called. */
  token?: string;
  /** Headers sent with every request (an x-request-id, say). */
  headers?: Record<string, string>;
  /** A fetch to use instead of the global one (tests, proxies, retries). */
  fetch?: (request: Request) => Promise<Response>;
}

function clientFor<Paths extends {}>(options: ClientOptions): Client<Paths> {
  return createClient<Paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ''),
    headers: { ...options.headers, ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}

/**
 * Typed clients of the four services, generated from their OpenAPI documents
 * (`npm run client:generate`): paths, parameters, bodies and answers are checked by TypeScript.
 *
 *   const search = createSearchClient({ baseUrl: 'http://127.0.0.1:3002', token });
 *   const { data, error } = await search.GET('/v1/search/messages', { params: { query: { q: 'hello' } } });
 */
export const createIngestClient = (options: ClientOptions) => clientFor<IngestPaths>(options);
export const createSearchClient = (options: ClientOptions) => clientFor<SearchPaths>(options);
export const createMigratorClient = (options: ClientOptions) => clientFor<MigratorPaths>(options);
export const createOpsClient = (options: ClientOptions) => clientFor<OpsPaths>(options);

/** The error body every service answers with (4xx and 5xx). */
export type ErrorBody = { error: { code: string; message: string; details?: unknown } };
