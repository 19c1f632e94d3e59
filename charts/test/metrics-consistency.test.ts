import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { stringify } from 'yaml';
import { createDataplaneMetrics } from '../../dataplane/src/metrics.ts';
import { createOperatorMetrics } from '../../operator/src/metrics.ts';
import { VALUE_SETS, chartDir, findObject, helmMissingReason, renderChart } from './helm.ts';
import { metricUses } from './promql-names.ts';

const promtoolMissing =
  spawnSync('promtool', ['--version']).status === 0
    ? undefined
    : 'promtool not installed (Debian package prometheus)';
if (promtoolMissing) console.log(`# skipped promtool checks: ${promtoolMissing}`);
const helmMissing = helmMissingReason();
if (helmMissing) console.log(`# skipped alert rule checks: ${helmMissing}`);

/** Series Prometheus or kube-state-metrics provide, not rtftp: the only names allowed besides ours. */
const EXTERNAL_SERIES = new Set(['up', 'kube_deployment_status_replicas_available']);
/** Labels Prometheus adds on scrape (target labels) or the histogram adds. */
const TARGET_LABELS = new Set([
  'job',
  'namespace',
  'pod',
  'instance',
  'container',
  'service',
  'endpoint',
]);

interface Exposed {
  labels: Set<string>;
}

/** Every series name each registry can expose (histograms: _bucket/_sum/_count), with its labels. */
async function exposedSeries(): Promise<Map<string, Exposed>> {
  const out = new Map<string, Exposed>();
  for (const registry of [
    createDataplaneMetrics().registry,
    createOperatorMetrics().registry,
    createOperatorMetrics(undefined, true, 'sync').registry,
  ] as Registry[]) {
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

function problemsOf(where: string, expr: string, exposed: Map<string, Exposed>): string[] {
  const problems: string[] = [];
  for (const use of metricUses(expr)) {
    if (EXTERNAL_SERIES.has(use.metric)) continue;
    const series = exposed.get(use.metric);
    if (!series) {
      problems.push(`${where}: ${use.metric} is not exposed by the dataplane or the operator`);
      continue;
    }
    for (const label of use.labels) {
      if (!series.labels.has(label) && !TARGET_LABELS.has(label))
        problems.push(`${where}: ${use.metric} has no label ${label}`);
    }
  }
  return problems;
}

interface Panel {
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

function dashboardQueries(): [string, string][] {
  const dashboard = JSON.parse(readFileSync(join(chartDir, 'dashboards/rtftp.json'), 'utf8')) as {
    panels: Panel[];
    templating: { list: { name: string; query?: { query: string } | string }[] };
  };
  const out: [string, string][] = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push([`panel "${p.title}"`, t.expr]);
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating.list) {
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const inner = q?.match(/^label_values\((.*),\s*\w+\)$/)?.[1];
    if (inner) out.push([`variable $${v.name}`, inner]);
  }
  return out;
}

interface RuleGroup {
  name: string;
  rules: { alert?: string; record?: string; expr: string }[];
}

function renderedRuleGroups(values: object): RuleGroup[] {
  const rule = findObject(renderChart(values), 'PrometheusRule');
  return (rule as unknown as { spec: { groups: RuleGroup[] } }).spec.groups;
}

const ALL_RULES = { ...VALUE_SETS.monitoring, dataplane: { kvm: { mode: 'hostPath' } } };

describe('metrics, dashboard and alerts agree', () => {
  test('the PromQL name extractor finds metrics and labels, not functions, keywords or variables', () => {
    const uses = metricUses(
      'histogram_quantile(0.95, sum by (le, backend) (rate(a_bucket{namespace=~"$namespace", x!="y{z}"}[$__rate_interval]))) / on(pod) b or vector(1e3) > bool c offset 5m',
    );
    assert.deepEqual(uses, [
      { metric: 'a_bucket', labels: ['namespace', 'x'] },
      { metric: 'b', labels: [] },
      { metric: 'c', labels: [] },
    ]);
  });

  test('every metric and label a dashboard panel queries is exposed', async () => {
    const exposed = await exposedSeries();
    const queries = dashboardQueries();
    assert.ok(queries.length >= 30, `only ${queries.length} queries found`);
    const used = new Set(queries.flatMap(([, e]) => metricUses(e).map((u) => u.metric)));
    assert.ok(used.has('rtftp_transfers_total') && used.has('rtftp_operator_reconciles_total'));
    assert.deepEqual(
      queries.flatMap(([where, expr]) => problemsOf(where, expr, exposed)),
      [],
    );
  });

  test('every metric and label an alert queries is exposed', { skip: helmMissing }, async () => {
    const exposed = await exposedSeries();
    const rules = renderedRuleGroups(ALL_RULES).flatMap((g) => g.rules);
    assert.ok(rules.length >= 10, `only ${rules.length} rules`);
    assert.deepEqual(
      rules.flatMap((r) => problemsOf(`alert ${r.alert}`, r.expr, exposed)),
      [],
    );
  });

  test('a renamed metric is caught', async () => {
    const exposed = await exposedSeries();
    assert.deepEqual(problemsOf('q', 'rate(rtftp_transfer_total{outcome="failed"}[5m])', exposed), [
      'q: rtftp_transfer_total is not exposed by the dataplane or the operator',
    ]);
    assert.deepEqual(problemsOf('q', 'rtftp_transfers_total{result="failed"}', exposed), [
      'q: rtftp_transfers_total has no label result',
    ]);
  });
});

describe('promtool', { skip: promtoolMissing }, () => {
  const promtool = (args: string[], input?: string) =>
    spawnSync('promtool', args, { input, encoding: 'utf8', timeout: 60_000 });

  test('promtool check metrics passes on everything rtftp registers', async () => {
    for (const registry of [
      createDataplaneMetrics(undefined, false).registry,
      createOperatorMetrics(undefined, false).registry,
    ]) {
      const run = promtool(['check', 'metrics'], await registry.metrics());
      assert.equal(run.status, 0, run.stdout + run.stderr);
    }
  });

  test("promtool check metrics on each full output finds only prom-client's own default-metric names", async () => {
    for (const registry of [
      createDataplaneMetrics().registry,
      createOperatorMetrics().registry,
      createOperatorMetrics(undefined, true, 'sync').registry,
    ]) {
      const run = promtool(['check', 'metrics'], await registry.metrics());
      const findings = (run.stdout + run.stderr).trim().split('\n').filter(Boolean);
      // nodejs_active_*_total are gauges named by prom-client; not ours to rename. Unprefixed:
      // the standard names generic process and Node.js dashboards query.
      assert.ok(
        findings.length > 0 &&
          findings.every((f) =>
            /^nodejs_active_\w+_total non-counter metrics should not have "_total" suffix$/.test(f),
          ),
        findings.join('\n'),
      );
    }
  });

  test(
    'promtool check rules passes on the PrometheusRule the chart renders',
    { skip: helmMissing },
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'rtftp-rules-'));
      try {
        const file = join(dir, 'rules.yaml');
        writeFileSync(file, stringify({ groups: renderedRuleGroups(ALL_RULES) }));
        const run = promtool(['check', 'rules', file]);
        assert.equal(run.status, 0, run.stdout + run.stderr);
        assert.match(run.stdout, /SUCCESS: 1[0-9] rules found/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
