import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { HttpError } from './errors.ts';

export interface TokenGrant {
  /** Who the token belongs to, for logs (the token itself is never logged). */
  name: string;
  token: string;
  scopes: string[];
}

export interface Principal {
  name: string;
  scopes: string[];
}

export interface Auth {
  /** Resolves the caller of a request, or throws 401. */
  authenticate(request: FastifyRequest): Principal;
  /**
   * The caller named by an `Authorization: Bearer <token>` value (from a NATS message header,
   * say) when it holds `scope`; throws the same 401/403 HttpError as the HTTP routes otherwise.
   */
  authorize(header: string | undefined, scope: string): Principal;
  readonly disabled: boolean;
  /** `/metrics` answers without a token (METRICS_PUBLIC=true); otherwise it needs `metrics:read`. */
  readonly metricsPublic: boolean;
}

/** Parses AUTH_TOKENS: a JSON array of {name, token, scopes}. */
export function parseTokenGrants(raw: string): TokenGrant[] {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new Error(
      'AUTH_TOKENS must be a JSON array like [{"name":"bot","token":"…","scopes":["events:write"]}]',
    );
  }
  if (!Array.isArray(value)) throw new Error('AUTH_TOKENS must be a JSON array');
  return value.map((g, i) => {
    const ok =
      g &&
      typeof g.name === 'string' &&
      typeof g.token === 'string' &&
      g.token.length >= 16 &&
      Array.isArray(g.scopes) &&
      g.scopes.every((s: unknown) => typeof s === 'string');
    if (!ok) {
      throw new Error(
        `AUTH_TOKENS[${i}] needs "name", a "token" of at least 16 characters and "scopes" (strings)`,
      );
    }
    return { name: g.name, token: g.token, scopes: g.scopes };
  });
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Bearer-token auth with scopes. Tokens are compared as SHA-256 digests in constant time.
 * It is off only when `disabled` is passed explicitly (AUTH_DISABLED=true). Which route needs
 * which scope is checked by installAccessControl (access.ts).
 */
export function createAuth(
  grants: TokenGrant[],
  options: { disabled?: boolean; metricsPublic?: boolean } = {},
): Auth {
  const table = grants.map((g) => ({ name: g.name, scopes: g.scopes, digest: digest(g.token) }));
  const disabled = options.disabled === true;

  function authenticate(request: FastifyRequest): Principal {
    return principalOf(request.headers.authorization);
  }

  function principalOf(header: string | undefined): Principal {
    if (disabled) return { name: 'anonymous (auth disabled)', scopes: ['*'] };
    if (!header)
      throw new HttpError(
        401,
        'UNAUTHORIZED',
        'missing Authorization header; send "Authorization: Bearer <token>"',
      );
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new HttpError(401, 'UNAUTHORIZED', 'Authorization header must be "Bearer <token>"');
    const d = digest(m[1]!);
    const grant = table.find((g) => timingSafeEqual(g.digest, d));
    if (!grant) throw new HttpError(401, 'UNAUTHORIZED', 'unknown or revoked token');
    return { name: grant.name, scopes: grant.scopes };
  }

  function authorize(header: string | undefined, scope: string): Principal {
    const principal = principalOf(header);
    if (!principal.scopes.includes(scope) && !principal.scopes.includes('*')) {
      throw new HttpError(403, 'FORBIDDEN', `token "${principal.name}" lacks the "${scope}" scope`);
    }
    return principal;
  }

  return { disabled, metricsPublic: options.metricsPublic === true, authenticate, authorize };
}
