import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, commonEnv, env, loadConfig, parseTokenGrants } from '../src/index.ts';

describe('loadConfig', () => {
  it('applies defaults and parses values', () => {
    const config = loadConfig(
      { ...commonEnv, EXTRA: env.list('a list', []) },
      { DATABASE_POOL_MAX: '25', DATABASE_PGBOUNCER: 'yes', EXTRA: 'a, b,,c' },
    );
    expect(config.DATABASE_POOL_MAX).toBe(25);
    expect(config.DATABASE_PGBOUNCER).toBe(true);
    expect(config.AUTH_DISABLED).toBe(false);
    expect(config.NATS_URL).toBe('nats://127.0.0.1:4222');
    expect(config.EXTRA).toEqual(['a', 'b', 'c']);
  });

  it('names a missing required variable', () => {
    const spec = { SOME_SECRET_DIR: env.string('where backups go') };
    expect(() => loadConfig(spec, {})).toThrow(ConfigError);
    try {
      loadConfig(spec, {});
    } catch (error) {
      expect((error as ConfigError).variables).toEqual(['SOME_SECRET_DIR']);
      expect((error as Error).message).toContain('SOME_SECRET_DIR is required (where backups go)');
    }
  });

  it('names every malformed variable, with what was expected', () => {
    let caught: ConfigError | undefined;
    try {
      loadConfig(commonEnv, {
        DATABASE_POOL_MAX: 'ten',
        AUTH_DISABLED: 'maybe',
        LOG_LEVEL: 'loud',
        DATABASE_STATEMENT_TIMEOUT_MS: '-5',
      });
    } catch (error) {
      caught = error as ConfigError;
    }
    expect(caught?.variables.sort()).toEqual(
      ['AUTH_DISABLED', 'DATABASE_POOL_MAX', 'DATABASE_STATEMENT_TIMEOUT_MS', 'LOG_LEVEL'].sort(),
    );
    expect(caught?.message).toContain('DATABASE_POOL_MAX must be a whole number, got "ten"');
    expect(caught?.message).toContain('AUTH_DISABLED must be true or false');
    expect(caught?.message).toContain('LOG_LEVEL must be one of');
    expect(caught?.message).toContain('DATABASE_STATEMENT_TIMEOUT_MS must be at least 0');
  });

  it('does not echo a password from a malformed DATABASE_URL', () => {
    expect(() => loadConfig(commonEnv, { DATABASE_URL: 'mysql://app:hunter2@db/x' })).toThrow(
      /DATABASE_URL must be a URL with scheme postgres or postgresql/,
    );
    try {
      loadConfig(commonEnv, { DATABASE_URL: 'mysql://app:hunter2@db/x' });
    } catch (error) {
      expect((error as Error).message).not.toContain('hunter2');
    }
  });

  it('AUTH_TOKENS must hold named tokens of at least 16 characters', () => {
    expect(() => parseTokenGrants('not json')).toThrow(/AUTH_TOKENS must be a JSON array/);
    expect(() => parseTokenGrants('[{"name":"bot","token":"short","scopes":[]}]')).toThrow(
      /AUTH_TOKENS\[0\]/,
    );
    expect(parseTokenGrants('[{"name":"bot","token":"0123456789abcdef","scopes":["events:write"]}]')).toEqual(
      [{ name: 'bot', token: '0123456789abcdef', scopes: ['events:write'] }],
    );
  });
});

describe('startService with a bad configuration', () => {
  const main = fileURLToPath(new URL('./fixtures/main.ts', import.meta.url));
  const run = (vars: Record<string, string>) =>
    spawnSync(process.execPath, [main], {
      env: { PATH: process.env.PATH, ...vars },
      encoding: 'utf8',
      timeout: 30_000,
    });

  it('exits 2 before connecting, naming each common variable at fault', () => {
    const result = run({ DATABASE_POOL_MAX: '0', PORT: 'eighty', FIXTURE_REQUIRED: 'x' });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('fixture: invalid configuration');
    expect(result.stderr).toContain('DATABASE_POOL_MAX must be at least 1');
    expect(result.stderr).toContain('PORT must be a whole number');
  });

  it('exits 2 naming a missing service variable', () => {
    const result = run({});
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(
      'FIXTURE_REQUIRED is required (A variable this fixture cannot run without)',
    );
  });
});
