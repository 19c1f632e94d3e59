/**
 * What the chart's dashboard and alerts are held against: the series each rtftp process
 * can expose (from the real metric registries, built in-process) and the dashboard's
 * queries. Shared by metrics-consistency.test.ts and dashboard.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { createDataplaneMetrics } from '../../dataplane/src/metrics.ts';
import { createOperatorMetrics } from '../../operator/src/metrics.ts';
import { chartDir } from './helm.ts';

/** Why promtool cannot run here, or undefined when it can. */
export function promtoolMissingReason(): string | undefined {
  return spawnSync('promtool', ['--version']).status === 0
    ? undefined
    : 'promtool not installed (Debian package prometheus)';
}

/** Series Prometheus or kube-state-metrics provide, not rtftp: the only names allowed besides ours. */
export const EXTERNAL_SERIES = new Set(['up', 'kube_deployment_status_replicas_available']);
/** Labels Prometheus adds on scrape (target labels), or an external label (cluster). */
export const TARGET_LABELS = new Set([
  'job',
  'namespace',
  'pod',
  'instance',
  'container',
  'service',
  'endpoint',
  'cluster',
]);

export interface Exposed {
  labels: Set<string>;
}

/** The registry of each process: the TFTP container, the operator, the config-sync sidecar. */
export function processRegistries(): Record<'dataplane' | 'operator' | 'sync', Registry> {
  return {
    dataplane: createDataplaneMetrics().registry,
    operator: createOperatorMetrics().registry,
    sync: createOperatorMetrics(undefined, true, 'sync').registry,
  };
}

/** Every series name the registries can expose (histograms: _bucket/_sum/_count), with its labels. */
export async function exposedSeries(
  registries: Registry[] = Object.values(processRegistries()),
): Promise<Map<string, Exposed>> {
  const out = new Map<string, Exposed>();
  for (const registry of registries) {
    for (const metric of await registry.getMetricsAsJSON()) {
      const declared = registry.getSingleMetric(metric.name) as unknown as {
        labelNames?: string[];
      };
      const labels = new Set(declared.labelNames ?? []);
      // Default metrics set their labels per sample rather than as labelNames.
      for (const value of metric.values) for (const l of Object.keys(value.labels)) labels.add(l);
      const type = String(metric.type);
      const suffixes =
        type === 'histogram'
          ? ['_bucket', '_sum', '_count']
          : type === 'summary'
            ? ['', '_sum', '_count']
            : [''];
      for (const s of suffixes)
        out.set(metric.name + s, { labels: s === '_bucket' ? new Set([...labels, 'le']) : labels });
    }
  }
  return out;
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: { x: number; y: number; w: number; h: number };
  links?: { title: string; url: string }[];
  targets?: { expr: string }[];
  panels?: Panel[];
}

export interface Variable {
  name: string;
  type: string;
  hide?: number;
  allValue?: string;
  query?: { query: string } | string;
}

export interface Dashboard {
  panels: Panel[];
  templating: { list: Variable[] };
}

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(join(chartDir, 'dashboards/rtftp.json'), 'utf8')) as Dashboard;
}

/** Every panel, rows' nested panels included, in order. */
export function allPanels(dashboard = loadDashboard()): Panel[] {
  return dashboard.panels.flatMap((p) => [
    p,
    ...allPanels({ ...dashboard, panels: p.panels ?? [] }),
  ]);
}

/** The series selector of a `label_values(selector, label)` variable query, if any. */
export function variableSelector(v: Variable): string | undefined {
  const q = typeof v.query === 'string' ? v.query : v.query?.query;
  return q?.match(/^label_values\((.*),\s*\w+\)$/)?.[1];
}

/** [where, expr] of every panel target and every label_values variable. */
export function dashboardQueries(dashboard = loadDashboard()): [string, string][] {
  const out: [string, string][] = [];
  for (const p of allPanels(dashboard))
    for (const t of p.targets ?? []) out.push([`panel "${p.title}"`, t.expr]);
  for (const v of dashboard.templating.list) {
    const inner = variableSelector(v);
    if (inner) out.push([`variable $${v.name}`, inner]);
  }
  return out;
}

/**
 * A dashboard expression as Prometheus receives it: Grafana's interval macros become a
 * duration (variables inside label values stay: they are strings to PromQL).
 */
export function grafanaToPromql(expr: string): string {
  return expr.replace(/\$\{?__(rate_interval|interval|range)\}?/g, '5m');
}
