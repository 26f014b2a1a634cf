import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// No Docker engine here: what can be checked without one is that docker-compose.yml wires
// Prometheus and Grafana to the files and names infra/ uses.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(`${ROOT}${path}`, 'utf8');
interface Service {
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
}
const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service> };

describe('docker-compose.yml: Prometheus and Grafana', () => {
  it('Prometheus reads infra/prometheus and writes the token file its scrape jobs name', () => {
    const prometheus = compose.services.prometheus!;
    expect(prometheus.volumes).toContain('./infra/prometheus:/etc/prometheus:ro');
    const config = parse(read('infra/prometheus/prometheus.yml')) as {
      scrape_configs: { job_name: string; authorization?: { credentials_file: string } }[];
    };
    const files = new Set(config.scrape_configs.flatMap((j) => j.authorization?.credentials_file ?? []));
    expect([...files]).toEqual(['/prometheus/metrics-token']);
    expect(prometheus.entrypoint!.join(' ')).toContain('> /prometheus/metrics-token');
    expect(prometheus.entrypoint!.join(' ')).toContain('--config.file=/etc/prometheus/prometheus.yml');
    for (const s of ['ingest', 'search', 'migrator', 'ops']) {
      const job = config.scrape_configs.find((j) => j.job_name === s);
      expect(job, s).toBeDefined();
    }
  });

  it('Grafana gets the provisioning, the dashboards where the provider looks, and every variable the datasources use', () => {
    const grafana = compose.services.grafana!;
    expect(grafana.volumes).toContain('./infra/grafana/provisioning:/etc/grafana/provisioning:ro');
    expect(grafana.volumes).toContain('./infra/grafana/dashboards:/etc/grafana/dashboards:ro');
    const datasources = read('infra/grafana/provisioning/datasources/datasources.yml');
    const used = [...datasources.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]!);
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) expect(Object.keys(grafana.environment!), name).toContain(name);
    const home = grafana.environment!.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!;
    expect(() => read(home.replace('/etc/grafana/dashboards/', 'infra/grafana/dashboards/'))).not.toThrow();
  });

  it('ops reports the free space of the PostgreSQL volume', () => {
    const ops = compose.services.ops!;
    expect(ops.environment!.OPS_DISK_PATHS).toBe('/var/lib/postgresql/data');
    expect(ops.volumes).toContain('pg-data:/var/lib/postgresql/data:ro');
  });
});
