/**
 * Small builders for Grafana dashboard JSON (schema of Grafana 11), so the provisioned dashboards
 * in infra/grafana/dashboards are generated from short definitions with one layout and one set
 * of datasources (`npm run dashboards` writes them; a test fails when they are stale).
 */

/** The provisioned datasources (infra/grafana/provisioning/datasources/datasources.yml). */
export const PROMETHEUS = { type: 'prometheus', uid: 'spywatcher-prometheus' } as const;
export const READ_MODELS = { type: 'grafana-postgresql-datasource', uid: 'spywatcher-read-models' } as const;
type Datasource = typeof PROMETHEUS | typeof READ_MODELS;

export interface PromTarget {
  expr: string;
  legend?: string;
  /** An instant query (stat, gauge, table panels). */
  instant?: boolean;
}

export interface PanelSpec {
  title: string;
  description?: string;
  type?: 'timeseries' | 'stat' | 'table' | 'bargauge';
  /** Grafana unit id: s, bytes, percentunit, reqps, short, dateTimeFromNow, ... */
  unit?: string;
  /** Width in grid columns (of 24) and height in rows. */
  w?: number;
  h?: number;
  /** Stat/gauge colour steps: [value, colour] after the base green. */
  thresholds?: [number, string][];
  prom?: PromTarget[];
  sql?: string;
  /** Table panels: colour each cell by its value. */
  colorCells?: boolean;
  stack?: boolean;
}

export interface RowSpec {
  row: string;
}

export interface DashboardSpec {
  uid: string;
  title: string;
  description: string;
  panels: (PanelSpec | RowSpec)[];
  /** Template variables (Grafana JSON), e.g. a guild picker. */
  variables?: object[];
  time?: { from: string; to: string };
}

const isRow = (p: PanelSpec | RowSpec): p is RowSpec => 'row' in p;

function fieldConfig(spec: PanelSpec) {
  const defaults: Record<string, unknown> = { unit: spec.unit ?? 'short' };
  if (spec.thresholds) {
    defaults.thresholds = {
      mode: 'absolute',
      steps: [
        { color: 'green', value: null },
        ...spec.thresholds.map(([value, color]) => ({ color, value })),
      ],
    };
    defaults.color = { mode: 'thresholds' };
  }
  if ((spec.type ?? 'timeseries') === 'timeseries') {
    defaults.custom = {
      drawStyle: 'line',
      lineWidth: 1,
      fillOpacity: spec.stack ? 30 : 10,
      showPoints: 'never',
      spanNulls: true,
      ...(spec.stack ? { stacking: { mode: 'normal', group: 'A' } } : {}),
    };
  }
  if (spec.type === 'table' && spec.colorCells) {
    defaults.custom = { cellOptions: { type: 'color-background', mode: 'gradient' }, align: 'center' };
    defaults.color = { mode: 'continuous-GrYlRd' };
  }
  return { defaults, overrides: [] };
}

function options(spec: PanelSpec) {
  switch (spec.type ?? 'timeseries') {
    case 'stat':
      return {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        colorMode: 'background',
        graphMode: 'none',
        textMode: 'auto',
      };
    case 'bargauge':
      return {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        orientation: 'horizontal',
        displayMode: 'gradient',
      };
    case 'table':
      return { showHeader: true, cellHeight: 'sm' };
    default:
      return {
        legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
        tooltip: { mode: 'multi', sort: 'desc' },
      };
  }
}

function targets(spec: PanelSpec, datasource: Datasource) {
  if (spec.sql !== undefined) {
    return [
      { refId: 'A', datasource, editorMode: 'code', format: 'table', rawQuery: true, rawSql: spec.sql },
    ];
  }
  return (spec.prom ?? []).map((t, i) => ({
    refId: String.fromCharCode(65 + i),
    datasource,
    editorMode: 'code',
    expr: t.expr,
    legendFormat: t.legend ?? '__auto',
    range: !t.instant,
    instant: t.instant === true,
  }));
}

/** Lays panels out left to right in rows of 24 columns; a row header starts a new line. */
export function dashboard(spec: DashboardSpec): object {
  const panels: object[] = [];
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  let id = 1;
  for (const p of spec.panels) {
    if (isRow(p)) {
      y += rowHeight;
      x = 0;
      rowHeight = 0;
      panels.push({
        id: id++,
        type: 'row',
        title: p.row,
        collapsed: false,
        gridPos: { x: 0, y, w: 24, h: 1 },
        panels: [],
      });
      y += 1;
      continue;
    }
    const w = p.w ?? 12;
    const h = p.h ?? 8;
    if (x + w > 24) {
      y += rowHeight;
      x = 0;
      rowHeight = 0;
    }
    const datasource = p.sql !== undefined ? READ_MODELS : PROMETHEUS;
    panels.push({
      id: id++,
      type: p.type ?? 'timeseries',
      title: p.title,
      ...(p.description ? { description: p.description } : {}),
      datasource,
      gridPos: { x, y, w, h },
      fieldConfig: fieldConfig(p),
      options: options(p),
      targets: targets(p, datasource),
    });
    x += w;
    rowHeight = Math.max(rowHeight, h);
  }
  return {
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: ['spywatcher'],
    timezone: 'utc',
    editable: true,
    graphTooltip: 1,
    refresh: '30s',
    schemaVersion: 39,
    version: 1,
    time: spec.time ?? { from: 'now-6h', to: 'now' },
    timepicker: {},
    annotations: { list: [] },
    templating: { list: spec.variables ?? [] },
    links: [{ type: 'dashboards', tags: ['spywatcher'], asDropdown: true, title: 'SpyWatcher' }],
    panels,
  };
}

/** p50/p95/p99 targets of a Prometheus histogram, summed over `by` (plus le). */
export function quantiles(metric: string, selector: string, by = '', qs = [0.5, 0.95, 0.99]): PromTarget[] {
  const group = by ? `${by}, le` : 'le';
  return qs.map((q) => ({
    expr: `histogram_quantile(${q}, sum by (${group}) (rate(${metric}_bucket${selector}[$__rate_interval])))`,
    legend: `p${Math.round(q * 100)}${by ? ` {{${by}}}` : ''}`,
  }));
}
