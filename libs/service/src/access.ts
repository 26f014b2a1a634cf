import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import type { Auth, Principal } from './auth.ts';
import { HttpError } from './errors.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a caller's token must hold; every route names one unless it is `public`. */
    scope?: string;
    /** Answered without a token: only health, readiness, the API document and its docs. */
    public?: boolean;
  }
}

/** Routes of the API's own documentation (the OpenAPI document and Swagger UI's pages). */
const DOCUMENTATION = /^\/(openapi\.json$|docs($|\/))/;

/** The error answers a protected route may give besides its own: no token, no scope, no database. */
const PROTECTED_ERRORS = [401, 403, 503];

export function hasScope(principal: Principal, scope: string): boolean {
  return principal.scopes.includes(scope) || principal.scopes.includes('*');
}

/**
 * Default-deny access control, checked in `onRequest` (before the body is read or validated), so
 * a caller without a valid token learns nothing but 401. A route declares `config: { scope }` or
 * `config: { public: true }`; registering one that declares neither fails at start. Unknown paths
 * need a valid token too (then they answer 404).
 */
export function installAccessControl(app: FastifyInstance, auth: Auth): void {
  app.addHook('onRoute', (route) => {
    route.config ??= {};
    const config = route.config;
    if (DOCUMENTATION.test(route.url)) config.public = true;
    if (config.public) return;
    if (!config.scope) {
      throw new Error(
        `route ${route.method} ${route.url} declares no access: give it config.scope or config.public`,
      );
    }
    documentScope(route, config.scope);
  });
  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    if (config?.public) return;
    const principal = auth.authenticate(request);
    if (config?.scope) requireScope(request, principal, config.scope);
  });
}

function requireScope(request: FastifyRequest, principal: Principal, scope: string): void {
  if (!hasScope(principal, scope)) {
    throw new HttpError(403, 'FORBIDDEN', `token "${principal.name}" lacks the "${scope}" scope`);
  }
  request.log.debug({ principal: principal.name, scope }, 'authorised');
}

/** States the scope in the OpenAPI document, with the answers a protected route may give. */
function documentScope(route: RouteOptions, scope: string): void {
  const schema = route.schema as
    | { hide?: boolean; security?: unknown; response?: Record<string, unknown> }
    | undefined;
  if (!schema || schema.hide) return;
  schema.security = [{ bearerAuth: [scope] }];
  schema.response ??= {};
  for (const status of PROTECTED_ERRORS) schema.response[status] ??= { $ref: 'ErrorResponse#' };
}
