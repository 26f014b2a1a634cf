import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// No Docker engine here: what can be checked without one is that docker-compose.yml gives NATS
// every password infra/nats/authorization.conf refers to, and each service a user of that file
// with the same password.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(`${ROOT}${path}`, 'utf8');
const compose = parse(read('docker-compose.yml')) as {
  services: Record<string, { environment?: Record<string, string>; volumes?: string[] }>;
};
const authorization = read('infra/nats/authorization.conf');
/** user → the variable its password comes from */
const users = new Map(
  [...authorization.matchAll(/user:\s*(\w+)\s*\n\s*password:\s*\$(\w+)/g)].map((m) => [m[1]!, m[2]!]),
);

describe('docker-compose.yml: NATS users', () => {
  it('mounts the authorization file beside nats.conf and sets every password it refers to', () => {
    const nats = compose.services.nats!;
    expect(read('infra/nats/nats.conf')).toContain('include ./authorization.conf');
    expect(nats.volumes).toContain('./infra/nats/authorization.conf:/etc/nats/authorization.conf:ro');
    expect([...users.keys()].sort()).toEqual(['bot', 'ingest', 'migrator', 'ops', 'opsctl', 'search']);
    for (const variable of users.values()) expect(nats.environment?.[variable], variable).toBeTruthy();
  });

  it('connects each service as its own user, with the password NATS has for it', () => {
    for (const service of ['ingest', 'search', 'migrator', 'ops']) {
      const env = compose.services[service]!.environment!;
      expect(env.NATS_USER).toBe(service);
      expect(env.NATS_PASSWORD).toBe(compose.services.nats!.environment![users.get(service)!]);
    }
  });
});
