/**
 * The Grafana dashboard (charts/rtftp/dashboards/rtftp.json): every expression parses with
 * promtool's PromQL parser, every selector filters on the variables of its side (cluster,
 * and the dataplane's or the operator's namespace), and there is one panel per alert that
 * queries what the alert queries and links its runbook.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { VALUE_SETS, findObject, helmMissingReason, renderChart } from './helm.ts';
import {
  allPanels,
  dashboardQueries,
  exposedSeries,
  grafanaToPromql,
  loadDashboard,
  processRegistries,
  promtoolMissingReason,
  variableSelector,
} from './monitoring.ts';
import { metricUses } from './promql-names.ts';
import type { MetricUse } from './promql-names.ts';

const promtoolMissing = promtoolMissingReason();
if (promtoolMissing) console.log(`# skipped dashboard parse check: ${promtoolMissing}`);
const helmMissing = helmMissingReason();
if (helmMissing) console.log(`# skipped dashboard/alert checks: ${helmMissing}`);

const RUNBOOK_URL = 'https://github.com/rtftp/rtftp/blob/main/docs/runbooks.md';

/** promtool check rules on one recording rule per expression; returns its status and output. */
function promtoolParse(exprs: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'rtftp-dashboard-'));
  try {
    const rules = exprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr }));
    writeFileSync(join(dir, 'rules.yaml'), stringify({ groups: [{ name: 'dashboard', rules }] }));
    const run = spawnSync('promtool', ['check', 'rules', join(dir, 'rules.yaml')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { status: run.status, output: run.stdout + run.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type Side = 'dataplane' | 'operator';

/** Which side's variables a query of `use` must filter on, or a problem. */
async function sideRules() {
  const r = processRegistries();
  const dataplane = await exposedSeries([r.dataplane, r.sync]);
  const operator = await exposedSeries([r.operator]);
  return (where: string, use: MetricUse): string[] => {
    const value = (label: string) =>
      use.matchers.find((m) => m.label === label && m.op === '=~')?.value;
    const problems: string[] = [];
    const say = (what: string) => problems.push(`${where}: ${use.metric} ${what}`);
    if (value('cluster') !== '$cluster') say('does not filter cluster=~"$cluster"');
    const onDataplane = dataplane.has(use.metric);
    const onOperator = operator.has(use.metric);
    let side: Side;
    if (use.metric === 'up' || (onDataplane && onOperator)) {
      // Exposed by both (process metrics, build info) or by Prometheus: the job says whose.
      const job = value('job');
      if (job !== '$dataplane_job' && job !== '$operator_job')
        return [
          ...problems,
          `${where}: ${use.metric} needs job=~"$dataplane_job" or "$operator_job"`,
        ];
      side = job === '$dataplane_job' ? 'dataplane' : 'operator';
    } else if (use.metric === 'kube_deployment_status_replicas_available') {
      if (value('deployment') !== '$operator_job') say('needs deployment=~"$operator_job"');
      side = 'operator';
    } else if (onDataplane || onOperator) side = onDataplane ? 'dataplane' : 'operator';
    else return [...problems, `${where}: ${use.metric} is exposed by no rtftp process`];
    if (value('namespace') !== `$${side}_namespace`)
      say(`does not filter namespace=~"$${side}_namespace"`);
    return problems;
  };
}

interface Rule {
  alert?: string;
  expr: string;
}

function renderedAlerts(): Rule[] {
  const rule = findObject(renderChart(VALUE_SETS.monitoring!), 'PrometheusRule');
  return (rule as unknown as { spec: { groups: { rules: Rule[] }[] } }).spec.groups
    .flatMap((g) => g.rules)
    .filter((r) => r.alert);
}

describe('dashboard', () => {
  test('variables: datasource, cluster, a namespace for each side, pods, hidden jobs', () => {
    const vars = loadDashboard().templating.list;
    assert.deepEqual(
      vars.map((v) => v.name),
      [
        'datasource',
        'cluster',
        'dataplane_namespace',
        'pod',
        'operator_namespace',
        'dataplane_job',
        'operator_job',
      ],
    );
    const byName = new Map(vars.map((v) => [v.name, v]));
    assert.equal(byName.get('datasource')!.type, 'datasource');
    // Each side's namespaces come from its own processes, so an operator in another
    // namespace than the DaemonSet is never filtered out.
    assert.match(variableSelector(byName.get('dataplane_namespace')!)!, /component="dataplane"/);
    assert.match(variableSelector(byName.get('operator_namespace')!)!, /component="operator"/);
    for (const name of ['dataplane_job', 'operator_job']) {
      const v = byName.get(name)!;
      assert.equal(v.hide, 2, `${name} is hidden`);
      // "All" must mean "every job found", not ".*" (which is every job Prometheus has).
      assert.equal(v.allValue, undefined, `${name} has no allValue`);
    }
    // Series without a cluster label match "All".
    assert.equal(byName.get('cluster')!.allValue, '.*');
  });

  test('every selector filters on cluster and on the namespace of its side', async () => {
    const check = await sideRules();
    const problems: string[] = [];
    for (const p of allPanels())
      for (const t of p.targets ?? [])
        for (const use of metricUses(t.expr)) problems.push(...check(`panel "${p.title}"`, use));
    assert.deepEqual(problems, []);
  });

  test('the side check catches a panel that filters on the wrong namespace or no cluster', async () => {
    const check = await sideRules();
    const [use] = metricUses('rtftp_ready{namespace=~"$operator_namespace"}');
    assert.deepEqual(check('p', use!), [
      'p: rtftp_ready does not filter cluster=~"$cluster"',
      'p: rtftp_ready does not filter namespace=~"$dataplane_namespace"',
    ]);
    const [up] = metricUses('up{cluster=~"$cluster", namespace=~"$dataplane_namespace"}');
    assert.match(check('p', up!).join(), /needs job=~/);
  });

  test('panel ids are unique and panels do not overlap', () => {
    const panels = allPanels();
    assert.equal(new Set(panels.map((p) => p.id)).size, panels.length);
    const cells = new Map<string, string>();
    for (const p of panels)
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++)
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          const other = cells.get(`${x},${y}`);
          assert.equal(other, undefined, `"${p.title}" overlaps "${other}"`);
          cells.set(`${x},${y}`, p.title);
        }
  });

  test(
    'one panel per alert: it queries what the alert queries and links its runbook',
    {
      skip: helmMissing,
    },
    () => {
      const panels = allPanels();
      const problems: string[] = [];
      for (const alert of renderedAlerts()) {
        const name = alert.alert!;
        const mine = panels.filter((p) => p.description?.startsWith(`Alert ${name}:`));
        if (mine.length !== 1) {
          problems.push(`${name}: ${mine.length} panels`);
          continue;
        }
        const panel = mine[0]!;
        const queried = new Set(
          (panel.targets ?? []).flatMap((t) => metricUses(t.expr).map((u) => u.metric)),
        );
        for (const use of metricUses(alert.expr))
          if (!queried.has(use.metric))
            problems.push(`${name}: panel does not query ${use.metric}`);
        if (!panel.links?.some((l) => l.url === `${RUNBOOK_URL}#${name.toLowerCase()}`))
          problems.push(`${name}: panel does not link its runbook`);
      }
      assert.deepEqual(problems, []);
    },
  );
});

describe('dashboard under promtool', { skip: promtoolMissing }, () => {
  test('every expression (panels and variables) parses with promtool', () => {
    const queries = dashboardQueries();
    assert.ok(queries.length >= 60, `only ${queries.length} queries`);
    const run = promtoolParse(queries.map(([, e]) => grafanaToPromql(e)));
    assert.equal(run.status, 0, run.output);
    assert.match(run.output, new RegExp(`SUCCESS: ${queries.length} rules found`));
  });

  test('a broken expression fails the parse check', () => {
    const run = promtoolParse(['sum(rate(rtftp_transfers_total{namespace=~"$x"}[5m])']);
    assert.notEqual(run.status, 0);
    assert.match(run.output, /unclosed left parenthesis|parse error/);
  });
});
