import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { promtool } from './prometheus.ts';

const DIR = fileURLToPath(new URL('../../infra/prometheus/', import.meta.url));
const yamlFiles = (sub: string) =>
  readdirSync(`${DIR}${sub}`)
    .filter((f) => f.endsWith('.yml'))
    .map((f) => `${DIR}${sub}/${f}`);

interface RuleFile {
  groups: { name: string; rules: { alert?: string; record?: string; expr: string }[] }[];
}
interface TestFile {
  tests: {
    alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[];
    promql_expr_test?: { expr: string }[];
  }[];
}

const run = (args: string[]) => {
  const result = spawnSync(promtool(), args, { cwd: DIR, encoding: 'utf8' });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
};

describe('infra/prometheus', () => {
  it('prometheus.yml is a valid configuration', () => {
    // Syntax only: its token file exists in the container (scrape.test.ts runs the whole file).
    const { code, output } = run(['check', 'config', '--syntax-only', 'prometheus.yml']);
    expect(code, output).toBe(0);
  });

  it('every rule file is valid', () => {
    const { code, output } = run(['check', 'rules', ...yamlFiles('rules')]);
    expect(code, output).toBe(0);
  });

  it('every alert rule passes its promtool unit tests', () => {
    const { code, output } = run(['test', 'rules', ...yamlFiles('tests')]);
    expect(code, output).toBe(0);
    expect(output).not.toContain('FAILED');
  });

  it('every alert has a unit test where it fires and one where it does not; every recording rule is tested', () => {
    const alerts = new Set<string>();
    const records = new Set<string>();
    for (const file of yamlFiles('rules')) {
      for (const group of (parse(readFileSync(file, 'utf8')) as RuleFile).groups) {
        for (const rule of group.rules) {
          if (rule.alert) alerts.add(rule.alert);
          if (rule.record) records.add(rule.record);
        }
      }
    }
    const fires = new Set<string>();
    const quiet = new Set<string>();
    const exprs: string[] = [];
    for (const file of yamlFiles('tests')) {
      for (const test of (parse(readFileSync(file, 'utf8')) as TestFile).tests) {
        for (const t of test.alert_rule_test ?? []) {
          ((t.exp_alerts ?? []).length > 0 ? fires : quiet).add(t.alertname);
        }
        for (const t of test.promql_expr_test ?? []) exprs.push(t.expr);
      }
    }
    expect(alerts.size).toBeGreaterThan(20);
    expect(
      [...alerts].filter((a) => !fires.has(a)),
      'alerts never shown firing',
    ).toEqual([]);
    expect(
      [...alerts].filter((a) => !quiet.has(a)),
      'alerts never shown quiet',
    ).toEqual([]);
    expect(
      [...records].filter((r) => !exprs.some((e) => e.includes(r))),
      'untested recording rules',
    ).toEqual([]);
  });

  it('promtool is the one the CI installs', () => {
    expect(execFileSync(promtool(), ['--version'], { encoding: 'utf8' })).toMatch(/promtool, version 2\./);
  });
});
