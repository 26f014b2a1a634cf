/**
 * What every service's OpenAPI document states beyond its routes' schemas, applied to the
 * generated document: who may call each operation, what a caller may leave out, that any
 * operation can answer a client error, where the API is served and under which licence.
 */

type Json = Record<string, unknown>;
interface Operation extends Json {
  parameters?: { in: string; required?: boolean; schema?: Json }[];
  requestBody?: { content?: Record<string, { schema?: Json }> };
  responses?: Record<string, unknown>;
  security?: unknown[];
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

/** The error shape any operation may answer with on a malformed request (400, 413, 415, ...). */
const CLIENT_ERROR = {
  description: 'A client error (malformed request, body too large or of another type), in the error shape.',
  content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorResponse' } } },
};

/** Fields with a default are filled in by the service: a caller may leave them out. */
function relaxDefaults(op: Operation): void {
  for (const p of op.parameters ?? []) {
    if (p.required && p.in !== 'path' && p.schema?.default !== undefined) p.required = false;
  }
  for (const media of Object.values(op.requestBody?.content ?? {})) {
    const schema = media.schema as { properties?: Record<string, Json>; required?: string[] } | undefined;
    if (!schema?.properties || !schema.required) continue;
    schema.required = schema.required.filter((name) => schema.properties![name]?.default === undefined);
    if (schema.required.length === 0) delete schema.required;
  }
}

/** The operations every service has (buildService's own routes). */
const SHARED_OPERATION_IDS: Record<string, string> = {
  'GET /health': 'getHealth',
  'GET /ready': 'getReadiness',
  'GET /metrics': 'getMetrics',
};

export function completeDocument<D extends Json>(document: D, operationIds: Record<string, string> = {}): D {
  const paths = (document.paths ?? {}) as Record<string, Record<string, Operation>>;
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const key = `${method.toUpperCase()} ${path}`;
      op.operationId ??= operationIds[key] ?? SHARED_OPERATION_IDS[key];
      // A route that declares no token requirement is public: say so, rather than leave it unsaid.
      op.security ??= [];
      relaxDefaults(op);
      op.responses ??= {};
      if (!Object.keys(op.responses).some((code) => code.startsWith('4'))) op.responses['4XX'] = CLIENT_ERROR;
    }
  }
  return document;
}
