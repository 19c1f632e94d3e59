import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createDataplaneMetrics } from '../../dataplane/src/metrics.ts';
import { createOperatorMetrics } from '../../operator/src/metrics.ts';
import { VALUE_SETS, findObject, helmMissingReason, renderChart } from './helm.ts';
import {
  EXTERNAL_SERIES,
  TARGET_LABELS,
  dashboardQueries,
  exposedSeries,
  processRegistries,
  promtoolMissingReason,
} from './monitoring.ts';
import type { Exposed } from './monitoring.ts';
import { metricUses } from './promql-names.ts';

const promtoolMissing = promtoolMissingReason();
if (promtoolMissing) console.log(`# skipped promtool checks: ${promtoolMissing}`);
const helmMissing = helmMissingReason();
if (helmMissing) console.log(`# skipped alert rule checks: ${helmMissing}`);

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
      {
        metric: 'a_bucket',
        labels: ['namespace', 'x'],
        matchers: [
          { label: 'namespace', op: '=~', value: '$namespace' },
          { label: 'x', op: '!=', value: 'y{z}' },
        ],
      },
      { metric: 'b', labels: [], matchers: [] },
      { metric: 'c', labels: [], matchers: [] },
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
      createOperatorMetrics(undefined, false, 'sync').registry,
    ]) {
      const run = promtool(['check', 'metrics'], await registry.metrics());
      assert.equal(run.status, 0, run.stdout + run.stderr);
    }
  });

  test("promtool check metrics on each full output finds only prom-client's own default-metric names", async () => {
    for (const registry of Object.values(processRegistries())) {
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
