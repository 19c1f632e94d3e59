/**
 * The alerts' logic under `promtool test rules`, on the PrometheusRule the chart renders:
 * every alert fires on a realistic failing series, stays silent on a healthy one, and the
 * absent() companions fire when there is no target at all. A new alert without a case here
 * fails the coverage test.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  NAMESPACE,
  RELEASE,
  VALUE_SETS,
  findObject,
  helmMissingReason,
  renderChart,
} from './helm.ts';
import { promtoolMissingReason } from './monitoring.ts';

const skip = helmMissingReason() ?? promtoolMissingReason();
if (skip) console.log(`# skipped alert rule unit tests: ${skip}`);

const DP_JOB = `${RELEASE}-rtftp-dataplane`;
const OP_JOB = `${RELEASE}-rtftp-operator`;
const CLUSTER = 'eu-1';

type Labels = Record<string, string>;

/** Target labels as prometheus-operator sets them (plus an external `cluster` label). */
function target(job: string, pod: string, instance: string, cluster = CLUSTER): Labels {
  return { job, namespace: NAMESPACE, pod, instance, cluster };
}
const DP1 = target(DP_JOB, 'dp-1', '10.0.0.1:9669');
const DP2 = target(DP_JOB, 'dp-2', '10.0.0.2:9669');
const OP1 = target(OP_JOB, 'op-1', '10.244.0.7:8080');
const OP2 = target(OP_JOB, 'op-2', '10.244.1.9:8080');

/** A series in promtool's notation: name{labels} → values ("0+10x40", "1x5 _x30"). */
function s(name: string, labels: Labels, values: string): [string, string] {
  const body = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',');
  return [`${name}{${body}}`, values];
}

interface Situation {
  /** What the situation is, for promtool's report. */
  name: string;
  series: [string, string][];
  at: string;
  /** The alert's label sets at `at`; [] = silent. */
  alerts: Labels[];
}

interface AlertCase {
  alert: string;
  fires: Situation;
  healthy: Situation;
  more?: Situation[];
}

const sev = (severity: string, labels: Labels): Labels => ({ severity, ...labels });
const pick = (labels: Labels, ...keys: string[]): Labels =>
  Object.fromEntries(keys.map((k) => [k, labels[k]!]));
const aggregated = (labels: Labels, ...more: string[]) =>
  pick(labels, 'cluster', 'namespace', ...more);

const CASES: AlertCase[] = [
  {
    alert: 'RtftpDataplaneAbsent',
    fires: {
      name: 'no dataplane target at all, the operator scraped',
      series: [s('up', OP1, '1x30')],
      at: '10m',
      alerts: [sev('critical', { job: DP_JOB, namespace: NAMESPACE })],
    },
    healthy: {
      name: 'two dataplane targets up',
      series: [s('up', DP1, '1x30'), s('up', DP2, '1x30')],
      at: '10m',
      alerts: [],
    },
    more: [
      {
        name: 'the DaemonSet deleted: targets vanish, stale after 5m, then for: 5m',
        series: [s('up', DP1, '1x5 _x40'), s('up', OP1, '1x45')],
        at: '25m',
        alerts: [sev('critical', { job: DP_JOB, namespace: NAMESPACE })],
      },
      {
        name: 'a target that is down is not absent (RtftpDataplaneDown covers it)',
        series: [s('up', DP1, '0x30')],
        at: '10m',
        alerts: [],
      },
    ],
  },
  {
    alert: 'RtftpDataplaneDown',
    fires: {
      name: 'dp-1 unscrapable for 10 minutes, dp-2 fine',
      series: [s('up', DP1, '1x5 0x30'), s('up', DP2, '1x35')],
      at: '16m',
      alerts: [sev('critical', DP1)],
    },
    healthy: {
      name: 'both up',
      series: [s('up', DP1, '1x30'), s('up', DP2, '1x30')],
      at: '16m',
      alerts: [],
    },
    more: [
      {
        name: 'down for 3 minutes: still pending (for: 5m)',
        series: [s('up', DP1, '1x5 0x30')],
        at: '8m',
        alerts: [],
      },
    ],
  },
  {
    alert: 'RtftpDataplaneNotReady',
    fires: {
      name: 'root unreadable for 10 minutes',
      series: [s('rtftp_ready', DP1, '1x2 0x30'), s('rtftp_ready', DP2, '1x32')],
      at: '12m',
      alerts: [sev('warning', DP1)],
    },
    healthy: {
      name: 'both ready',
      series: [s('rtftp_ready', DP1, '1x30'), s('rtftp_ready', DP2, '1x30')],
      at: '12m',
      alerts: [],
    },
  },
  {
    alert: 'RtftpTransfersFailing',
    fires: {
      name: '30% of transfers fail or time out',
      series: [
        s('rtftp_transfers_total', { ...DP1, outcome: 'completed', source: 'nbd' }, '0+70x40'),
        s('rtftp_transfers_total', { ...DP1, outcome: 'failed', source: 'nbd' }, '0+20x40'),
        s('rtftp_transfers_total', { ...DP1, outcome: 'timeout', source: 'default' }, '0+10x40'),
        s('rtftp_transfers_total', { ...DP2, outcome: 'completed', source: 'nbd' }, '0+70x40'),
      ],
      at: '30m',
      alerts: [sev('warning', aggregated(DP1, 'pod'))],
    },
    healthy: {
      name: '1% fail (a client that went away now and then)',
      series: [
        s('rtftp_transfers_total', { ...DP1, outcome: 'completed', source: 'nbd' }, '0+99x40'),
        s('rtftp_transfers_total', { ...DP1, outcome: 'failed', source: 'nbd' }, '0+1x40'),
        s('rtftp_transfers_total', { ...DP1, outcome: 'aborted', source: 'nbd' }, '0+50x40'),
      ],
      at: '30m',
      alerts: [],
    },
    more: [
      {
        name: 'no transfers at all is not a failure rate',
        series: [
          s('rtftp_transfers_total', { ...DP1, outcome: 'completed', source: 'nbd' }, '5x40'),
        ],
        at: '30m',
        alerts: [],
      },
    ],
  },
  {
    alert: 'RtftpNbdLaunchesFailing',
    fires: {
      name: 'an appliance times out every minute',
      series: [
        s(
          'rtftp_nbd_launch_failures_total',
          { ...DP1, backend: 'guestfs', reason: 'timeout' },
          '0+1x40',
        ),
      ],
      at: '20m',
      alerts: [
        sev('warning', { ...aggregated(DP1, 'pod'), backend: 'guestfs', reason: 'timeout' }),
      ],
    },
    healthy: {
      name: 'one failure, then none',
      series: [
        s(
          'rtftp_nbd_launch_failures_total',
          { ...DP1, backend: 'native', reason: 'connection-refused' },
          '0x10 1x30',
        ),
      ],
      at: '20m',
      alerts: [],
    },
  },
  {
    alert: 'RtftpRequestsDroppedByKernel',
    fires: {
      name: 'a boot storm overflows the listening socket: 2,400 requests dropped in 5 minutes',
      series: [s('rtftp_listen_drops_total', DP1, '0x10 0+480x5 2400x15')],
      at: '15m',
      alerts: [sev('warning', aggregated(DP1, 'pod'))],
    },
    healthy: {
      name: 'drops long ago, none in the last 10 minutes',
      series: [s('rtftp_listen_drops_total', DP1, '0x5 0+50x2 100x25')],
      at: '25m',
      alerts: [],
    },
  },
  {
    alert: 'RtftpNbdConfigsInvalid',
    fires: {
      name: 'two invalid configs for 15 minutes',
      series: [
        s('rtftp_nbd_configs', { ...DP1, state: 'invalid' }, '2x30'),
        s('rtftp_nbd_configs', { ...DP1, state: 'valid' }, '40x30'),
      ],
      at: '15m',
      alerts: [sev('warning', aggregated(DP1, 'pod'))],
    },
    healthy: {
      name: 'all valid',
      series: [
        s('rtftp_nbd_configs', { ...DP1, state: 'invalid' }, '0x30'),
        s('rtftp_nbd_configs', { ...DP1, state: 'valid' }, '40x30'),
      ],
      at: '15m',
      alerts: [],
    },
  },
  {
    alert: 'RtftpConfigSyncFailing',
    fires: {
      name: 'the sidecar fails every minute',
      series: [
        s('rtftp_operator_sync_errors_total', { ...DP1, instance: '10.0.0.1:9670' }, '0+1x40'),
      ],
      at: '25m',
      alerts: [sev('warning', aggregated(DP1, 'pod'))],
    },
    healthy: {
      name: 'no errors',
      series: [
        s('rtftp_operator_sync_errors_total', { ...DP1, instance: '10.0.0.1:9670' }, '0x40'),
      ],
      at: '25m',
      alerts: [],
    },
  },
  {
    alert: 'RtftpKvmUnavailable',
    fires: {
      name: 'probed at start: unusable',
      series: [s('rtftp_kvm_available', DP1, '-1 0x40')],
      at: '20m',
      alerts: [sev('info', DP1)],
    },
    healthy: {
      name: 'KVM works',
      series: [s('rtftp_kvm_available', DP1, '-1 1x40')],
      at: '20m',
      alerts: [],
    },
    more: [
      {
        name: 'not probed yet (-1), for an hour: no page',
        series: [s('rtftp_kvm_available', DP1, '-1x70')],
        at: '60m',
        alerts: [],
      },
    ],
  },
  {
    alert: 'RtftpOperatorAbsent',
    fires: {
      name: 'no operator target at all, the dataplane scraped',
      series: [s('up', DP1, '1x30')],
      at: '15m',
      alerts: [sev('warning', { job: OP_JOB, namespace: NAMESPACE })],
    },
    healthy: {
      name: 'the operator up',
      series: [s('up', OP1, '1x30')],
      at: '15m',
      alerts: [],
    },
  },
  {
    alert: 'RtftpOperatorDown',
    fires: {
      name: 'op-1 unscrapable, op-2 fine',
      series: [s('up', OP1, '0x30'), s('up', OP2, '1x30')],
      at: '15m',
      alerts: [sev('warning', OP1)],
    },
    healthy: {
      name: 'both up',
      series: [s('up', OP1, '1x30'), s('up', OP2, '1x30')],
      at: '15m',
      alerts: [],
    },
  },
  {
    alert: 'RtftpOperatorNoLeader',
    fires: {
      name: 'two replicas, neither leads',
      series: [s('rtftp_operator_leader', OP1, '0x30'), s('rtftp_operator_leader', OP2, '0x30')],
      at: '10m',
      alerts: [sev('warning', aggregated(OP1))],
    },
    healthy: {
      name: 'op-1 leads, op-2 stands by',
      series: [s('rtftp_operator_leader', OP1, '1x30'), s('rtftp_operator_leader', OP2, '0x30')],
      at: '10m',
      alerts: [],
    },
    more: [
      {
        name: 'two clusters: the one leading does not mask the one without a leader',
        series: [
          s('rtftp_operator_leader', OP1, '1x30'),
          s('rtftp_operator_leader', { ...OP1, cluster: 'us-2' }, '0x30'),
        ],
        at: '10m',
        alerts: [sev('warning', { cluster: 'us-2', namespace: NAMESPACE })],
      },
    ],
  },
  {
    alert: 'RtftpOperatorNotReady',
    fires: {
      name: 'kube-state-metrics: no replica available',
      series: [
        s(
          'kube_deployment_status_replicas_available',
          {
            job: 'kube-state-metrics',
            namespace: NAMESPACE,
            deployment: OP_JOB,
            cluster: CLUSTER,
          },
          '0x30',
        ),
      ],
      at: '15m',
      alerts: [
        sev('warning', {
          job: 'kube-state-metrics',
          namespace: NAMESPACE,
          deployment: OP_JOB,
          cluster: CLUSTER,
        }),
      ],
    },
    healthy: {
      name: 'one replica available',
      series: [
        s(
          'kube_deployment_status_replicas_available',
          { job: 'kube-state-metrics', namespace: NAMESPACE, deployment: OP_JOB },
          '1x30',
        ),
      ],
      at: '15m',
      alerts: [],
    },
  },
  {
    alert: 'RtftpOperatorReconcileErrors',
    fires: {
      name: 'every render fails',
      series: [
        s(
          'rtftp_operator_reconciles_total',
          { ...OP1, controller: 'render', result: 'error' },
          '0+1x40',
        ),
        s(
          'rtftp_operator_reconciles_total',
          { ...OP1, controller: 'status', result: 'success' },
          '0+5x40',
        ),
      ],
      at: '30m',
      alerts: [sev('warning', { ...aggregated(OP1), controller: 'render' })],
    },
    healthy: {
      name: 'no errors',
      series: [
        s(
          'rtftp_operator_reconciles_total',
          { ...OP1, controller: 'render', result: 'success' },
          '0+5x40',
        ),
        s(
          'rtftp_operator_reconciles_total',
          { ...OP1, controller: 'render', result: 'error' },
          '3x40',
        ),
      ],
      at: '30m',
      alerts: [],
    },
  },
  {
    alert: 'RtftpBootClientsInConflict',
    fires: {
      name: 'two BootClients claim held IPs',
      series: [
        s('rtftp_operator_bootclients', { ...OP1, condition: 'Conflict', status: 'True' }, '2x30'),
      ],
      at: '10m',
      alerts: [sev('warning', aggregated(OP1))],
    },
    healthy: {
      name: 'no conflict',
      series: [
        s('rtftp_operator_bootclients', { ...OP1, condition: 'Conflict', status: 'True' }, '0x30'),
        s('rtftp_operator_bootclients', { ...OP1, condition: 'Conflict', status: 'False' }, '9x30'),
      ],
      at: '10m',
      alerts: [],
    },
  },
  {
    alert: 'RtftpBootClientsInvalid',
    fires: {
      name: 'one BootClient not accepted',
      series: [
        s('rtftp_operator_bootclients', { ...OP1, condition: 'Accepted', status: 'False' }, '1x30'),
      ],
      at: '10m',
      alerts: [sev('warning', aggregated(OP1))],
    },
    healthy: {
      name: 'all accepted',
      series: [
        s('rtftp_operator_bootclients', { ...OP1, condition: 'Accepted', status: 'False' }, '0x30'),
        s('rtftp_operator_bootclients', { ...OP1, condition: 'Accepted', status: 'True' }, '9x30'),
      ],
      at: '10m',
      alerts: [],
    },
  },
];

interface Rule {
  alert?: string;
  expr: string;
  annotations?: Record<string, string>;
}
interface Group {
  name: string;
  rules: Rule[];
}

/** The rules of the monitoring values set (KVM requested, so RtftpKvmUnavailable is in). */
function renderedGroups(): Group[] {
  const rule = findObject(renderChart(VALUE_SETS.monitoring!), 'PrometheusRule');
  return (rule as unknown as { spec: { groups: Group[] } }).spec.groups;
}

function promtoolTest(alert: string, situation: Situation) {
  return {
    name: `${alert}: ${situation.name}`,
    interval: '1m',
    input_series: situation.series.map(([series, values]) => ({ series, values })),
    alert_rule_test: [
      {
        eval_time: situation.at,
        alertname: alert,
        exp_alerts: situation.alerts.map((exp_labels) => ({ exp_labels })),
      },
    ],
  };
}

/** Runs `promtool test rules` on the given rule groups; returns its status and output. */
function runPromtoolTests(groups: Group[], tests: object[]) {
  const dir = mkdtempSync(join(tmpdir(), 'rtftp-alerts-'));
  try {
    writeFileSync(join(dir, 'rules.yaml'), stringify({ groups }));
    writeFileSync(
      join(dir, 'tests.yaml'),
      stringify({ rule_files: ['rules.yaml'], evaluation_interval: '1m', tests }),
    );
    const run = spawnSync('promtool', ['test', 'rules', 'tests.yaml'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { status: run.status, output: run.stdout + run.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('alert rules under promtool test rules', { skip }, () => {
  test('every alert the chart renders has a case here', () => {
    const rendered = renderedGroups()
      .flatMap((g) => g.rules.map((r) => r.alert))
      .filter((a): a is string => Boolean(a))
      .sort();
    assert.deepEqual(rendered, CASES.map((c) => c.alert).sort());
  });

  for (const c of CASES) {
    test(`${c.alert} fires on "${c.fires.name}", stays silent on "${c.healthy.name}"${
      c.more ? `, and: ${c.more.map((m) => `"${m.name}"`).join(', ')}` : ''
    }`, () => {
      assert.ok(c.fires.alerts.length > 0, 'a firing case must expect an alert');
      const groups = renderedGroups();
      // promtool compares annotations too; they are not what this test is about.
      for (const g of groups) for (const r of g.rules) r.annotations = {};
      const tests = [c.fires, c.healthy, ...(c.more ?? [])].map((sit) =>
        promtoolTest(c.alert, sit),
      );
      const run = runPromtoolTests(groups, tests);
      assert.equal(run.status, 0, run.output);
      assert.match(run.output, /SUCCESS/);
    });
  }
});
