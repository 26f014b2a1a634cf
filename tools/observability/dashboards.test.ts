import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DASHBOARD_DIR, renderDashboards } from './dashboards/main.ts';

const PROVISIONING = fileURLToPath(new URL('../../infra/grafana/provisioning/', import.meta.url));

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { datasource: { uid: string }; expr?: string; rawSql?: string }[];
}

describe('infra/grafana', () => {
  it('the committed dashboards are the generated ones (npm run dashboards)', () => {
    const rendered = renderDashboards();
    expect(readdirSync(DASHBOARD_DIR).sort()).toEqual(rendered.map((d) => d.file).sort());
    for (const { file, json } of rendered) {
      expect(
        readFileSync(`${DASHBOARD_DIR}${file}`, 'utf8'),
        `${file} is stale: run npm run dashboards`,
      ).toBe(json);
    }
  });

  it('every panel queries a provisioned datasource, fits the grid and has an id of its own', () => {
    const provisioned = parse(readFileSync(`${PROVISIONING}datasources/datasources.yml`, 'utf8')) as {
      datasources: { uid: string; type: string }[];
    };
    const types = new Map(provisioned.datasources.map((d) => [d.uid, d.type]));
    const uids = new Set<string>();
    for (const { file, json } of renderDashboards()) {
      const d = JSON.parse(json) as {
        uid: string;
        panels: Panel[];
        templating: { list: { name: string }[] };
      };
      expect(uids.has(d.uid), `${file}: uid ${d.uid} repeated`).toBe(false);
      uids.add(d.uid);
      const ids = d.panels.map((p) => p.id);
      expect(new Set(ids).size, file).toBe(ids.length);
      for (const p of d.panels.filter((p) => p.type !== 'row')) {
        expect(types.get(p.datasource!.uid), `${file} ${p.title}`).toBe(p.datasource!.type);
        expect(p.gridPos.x + p.gridPos.w, `${file} ${p.title}`).toBeLessThanOrEqual(24);
        expect(p.targets!.length, `${file} ${p.title}`).toBeGreaterThan(0);
        for (const t of p.targets!) {
          expect(t.datasource.uid).toBe(p.datasource!.uid);
          expect(t.expr ?? t.rawSql, `${file} ${p.title}`).toBeTruthy();
        }
      }
    }
    expect(uids.size).toBe(7);
  });

  it('the dashboard provider loads the directory compose mounts', () => {
    const providers = parse(readFileSync(`${PROVISIONING}dashboards/dashboards.yml`, 'utf8')) as {
      providers: { options: { path: string } }[];
    };
    expect(providers.providers[0]!.options.path).toBe('/etc/grafana/dashboards');
  });
});
