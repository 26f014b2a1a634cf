import { existsSync } from 'node:fs';

/**
 * Configuration from environment variables, validated once at start. Each variable is
 * declared with a parser, a default and a description; the same declarations feed the
 * README's configuration table and the error a person sees when a value is missing or malformed.
 */
export interface VarSpec<T> {
  description: string;
  /** Absent means required. */
  default?: T;
  /** Shown instead of the value in docs and logs. */
  secret?: boolean;
  parse: (raw: string, name: string) => T;
}

export class ConfigError extends Error {
  readonly variables: string[];
  constructor(variables: string[], message: string) {
    super(message);
    this.name = 'ConfigError';
    this.variables = variables;
  }
}

type Spec = Record<string, VarSpec<unknown>>;
export type ConfigOf<S extends Spec> = { [K in keyof S]: S[K] extends VarSpec<infer T> ? T : never };

export function loadConfig<S extends Spec>(spec: S, env: NodeJS.ProcessEnv = process.env): ConfigOf<S> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  const names: string[] = [];
  for (const [name, v] of Object.entries(spec)) {
    const raw = env[name];
    if (raw === undefined || raw === '') {
      if ('default' in v) out[name] = v.default;
      else {
        problems.push(`${name} is required (${v.description})`);
        names.push(name);
      }
      continue;
    }
    try {
      out[name] = v.parse(raw, name);
    } catch (error) {
      problems.push((error as Error).message);
      names.push(name);
    }
  }
  if (problems.length > 0) {
    throw new ConfigError(names, `invalid configuration: ${problems.join('; ')}`);
  }
  return out as ConfigOf<S>;
}

function fail(name: string, raw: string, expected: string, secret = false): never {
  throw new Error(`${name} must be ${expected}, got ${secret ? 'a value that is not' : JSON.stringify(raw)}`);
}

export const env = {
  string(description: string, defaultValue?: string, opts: { secret?: boolean } = {}): VarSpec<string> {
    return {
      description,
      ...(defaultValue !== undefined ? { default: defaultValue } : {}),
      secret: opts.secret,
      parse: (raw) => raw,
    };
  },
  int(
    description: string,
    defaultValue: number | undefined,
    opts: { min?: number; max?: number } = {},
  ): VarSpec<number> {
    return {
      description,
      ...(defaultValue !== undefined ? { default: defaultValue } : {}),
      parse: (raw, name) => {
        if (!/^-?\d+$/.test(raw.trim())) fail(name, raw, 'a whole number');
        const n = Number(raw);
        if (opts.min !== undefined && n < opts.min) fail(name, raw, `at least ${opts.min}`);
        if (opts.max !== undefined && n > opts.max) fail(name, raw, `at most ${opts.max}`);
        return n;
      },
    };
  },
  bool(description: string, defaultValue: boolean): VarSpec<boolean> {
    return {
      description,
      default: defaultValue,
      parse: (raw, name) => {
        const v = raw.trim().toLowerCase();
        if (['1', 'true', 'yes', 'on'].includes(v)) return true;
        if (['0', 'false', 'no', 'off'].includes(v)) return false;
        return fail(name, raw, 'true or false');
      },
    };
  },
  url(description: string, defaultValue: string | undefined, protocols: string[]): VarSpec<string> {
    return {
      description,
      ...(defaultValue !== undefined ? { default: defaultValue } : {}),
      parse: (raw, name) => {
        let u: URL;
        try {
          u = new URL(raw);
        } catch {
          return fail(name, raw.replace(/:[^:@/]*@/, ':***@'), `a URL (${protocols.join(', ')})`);
        }
        if (!protocols.includes(u.protocol.replace(/:$/, ''))) {
          fail(name, `${u.protocol}//…`, `a URL with scheme ${protocols.join(' or ')}`);
        }
        return raw;
      },
    };
  },
  oneOf<T extends string>(description: string, defaultValue: T, values: readonly T[]): VarSpec<T> {
    return {
      description,
      default: defaultValue,
      parse: (raw, name) => {
        if (!(values as readonly string[]).includes(raw)) fail(name, raw, `one of ${values.join(', ')}`);
        return raw as T;
      },
    };
  },
  list(description: string, defaultValue: string[]): VarSpec<string[]> {
    return {
      description,
      default: defaultValue,
      parse: (raw) =>
        raw
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
    };
  },
  custom<T>(
    description: string,
    defaultValue: T | undefined,
    parse: (raw: string, name: string) => T,
    secret = false,
  ): VarSpec<T> {
    return { description, ...(defaultValue !== undefined ? { default: defaultValue } : {}), secret, parse };
  },
};

/** Variables every service reads. */
export const commonEnv = {
  HOST: env.string('Address the HTTP server listens on', '127.0.0.1'),
  LOG_LEVEL: env.oneOf('pino log level', 'info', [
    'fatal',
    'error',
    'warn',
    'info',
    'debug',
    'trace',
    'silent',
  ] as const),
  LOG_FORMAT: env.oneOf(
    'Log lines as JSON, as readable pino-pretty lines, or auto: readable on a terminal outside NODE_ENV=production',
    'auto',
    ['auto', 'json', 'pretty'] as const,
  ),
  DATABASE_URL: env.url('PostgreSQL connection string', 'postgres://postgres@127.0.0.1:5432/spywatcher', [
    'postgres',
    'postgresql',
  ]),
  DATABASE_POOL_MAX: env.int("Maximum PostgreSQL connections in this service's pool", 10, {
    min: 1,
    max: 500,
  }),
  DATABASE_STATEMENT_TIMEOUT_MS: env.int("Statement timeout for this service's queries (0 = none)", 30_000, {
    min: 0,
  }),
  DATABASE_PGBOUNCER: env.bool(
    'Set when DATABASE_URL points at PgBouncer in transaction pooling mode (disables prepared statements)',
    false,
  ),
  NATS_URL: env.string('NATS server(s), comma-separated', 'nats://127.0.0.1:4222'),
  NATS_USER: env.string('NATS user (with NATS_PASSWORD); see infra/nats/nats.conf for the shipped users', ''),
  NATS_PASSWORD: env.string('Password of NATS_USER', '', { secret: true }),
  NATS_TOKEN: env.string('NATS authentication token (instead of a user and password)', '', { secret: true }),
  NATS_CREDS: env.custom<string>(
    'NATS credentials file (JWT and NKEY seed, from nsc) for servers run with accounts',
    '',
    (raw, name) => {
      if (!existsSync(raw))
        throw new Error(`${name} must name a readable credentials file, got ${JSON.stringify(raw)}`);
      return raw;
    },
  ),
  AUTH_TOKENS: env.custom<string>(
    'Bearer tokens and their scopes: JSON array of {"name","token","scopes":[...]} (see README, Authentication)',
    '[]',
    (raw) => raw,
    true,
  ),
  AUTH_DISABLED: env.bool('Turn bearer-token checks off (development only; must be set explicitly)', false),
  METRICS_PUBLIC: env.bool(
    'Serve /metrics without a token (otherwise it needs a token with the metrics:read scope)',
    false,
  ),
  SHUTDOWN_TIMEOUT_MS: env.int(
    'Upper bound for a graceful shutdown before the process exits anyway',
    10_000,
    { min: 100 },
  ),
};
