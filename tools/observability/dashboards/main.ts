/**
 * `npm run dashboards`: writes the provisioned Grafana dashboards (infra/grafana/dashboards/*.json)
 * from their definitions. `-- --check` exits 1 naming the files that differ instead.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dashboard } from './grafana.ts';
import { PROMETHEUS_DASHBOARDS } from './prometheus-dashboards.ts';
import { readModelsDashboard } from './read-models-dashboard.ts';

export const DASHBOARD_DIR = fileURLToPath(new URL('../../../infra/grafana/dashboards/', import.meta.url));

/** File name and JSON text of every dashboard. */
export function renderDashboards(): { file: string; json: string }[] {
  return [...PROMETHEUS_DASHBOARDS, readModelsDashboard].map((spec) => ({
    file: `${spec.uid.replace(/^spywatcher-/, '')}.json`,
    json: `${JSON.stringify(dashboard(spec), null, 2)}\n`,
  }));
}

async function main(check: boolean): Promise<number> {
  const stale: string[] = [];
  for (const { file, json } of renderDashboards()) {
    const path = `${DASHBOARD_DIR}${file}`;
    const current = await readFile(path, 'utf8').catch(() => '');
    if (current === json) continue;
    if (check) stale.push(file);
    else await writeFile(path, json);
  }
  if (stale.length > 0) {
    process.stderr.write(`stale dashboards (run npm run dashboards): ${stale.join(', ')}\n`);
    return 1;
  }
  return 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.includes('--check'));
