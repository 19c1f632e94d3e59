/**
 * The alerts' logic, run by promtool's rule unit tests on made-up series: each alert fires
 * on the situation it is named after and stays quiet on a healthy one.
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

const skip =
  helmMissingReason() ??
  (spawnSync('promtool', ['--version']).status === 0
    ? undefined
    : 'promtool not installed (Debian package prometheus)');
if (skip) console.log(`# skipped alert rule unit tests: ${skip}`);

const DP = `job="${RELEASE}-rtftp-dataplane",namespace="${NAMESPACE}",pod="dp-1"`;
const OP = `job="${RELEASE}-rtftp-operator",namespace="${NAMESPACE}",pod="op-1"`;

interface Rule {
  alert: string;
  annotations: Record<string, string>;
}

/** One promtool test: input series and, per alert, the label sets expected at eval time. */
function alertTest(
  series: Record<string, string>,
  evalTime: string,
  expected: Record<string, Record<string, string>[]>,
) {
  return {
    interval: '1m',
    input_series: Object.entries(series).map(([s, values]) => ({ series: s, values })),
    alert_rule_test: Object.entries(expected).map(([alertname, alerts]) => ({
      eval_time: evalTime,
      alertname,
      exp_alerts: alerts.map((labels) => ({ exp_labels: labels })),
    })),
  };
}

describe('alert rules under promtool test rules', { skip }, () => {
  test('each alert fires on its failure and stays quiet when healthy', () => {
    const rule = findObject(renderChart(VALUE_SETS.monitoring!), 'PrometheusRule');
    const groups = (rule as unknown as { spec: { groups: { rules: Rule[] }[] } }).spec.groups;
    // promtool compares annotations too; they are not what this test is about.
    for (const g of groups) for (const r of g.rules) r.annotations = {};
    const tests = [
      alertTest(
        {
          [`rtftp_transfers_total{${DP},outcome="completed",source="default"}`]: '0+10x40',
          [`rtftp_transfers_total{${DP},outcome="failed",source="nbd"}`]: '0+10x40',
          [`rtftp_ready{${DP}}`]: '0x40',
          [`rtftp_nbd_launch_failures_total{${DP},backend="guestfs",reason="timeout"}`]: '0+1x40',
          [`up{${OP}}`]: '1x40',
          [`rtftp_operator_leader{${OP}}`]: '0x40',
          [`rtftp_operator_bootclients{${OP},condition="Conflict",status="True"}`]: '2x40',
        },
        '30m',
        {
          RtftpTransfersFailing: [{ severity: 'warning', namespace: NAMESPACE, pod: 'dp-1' }],
          RtftpDataplaneNotReady: [{ severity: 'warning', ...labelsOf(DP) }],
          RtftpNbdLaunchesFailing: [
            {
              severity: 'warning',
              namespace: NAMESPACE,
              pod: 'dp-1',
              backend: 'guestfs',
              reason: 'timeout',
            },
          ],
          RtftpOperatorNoLeader: [{ severity: 'critical' }],
          RtftpBootClientsInConflict: [{ severity: 'warning', namespace: NAMESPACE }],
          RtftpOperatorDown: [],
        },
      ),
      alertTest(
        {
          [`rtftp_transfers_total{${DP},outcome="completed",source="default"}`]: '0+100x40',
          [`rtftp_transfers_total{${DP},outcome="failed",source="nbd"}`]: '0+1x40',
          [`rtftp_ready{${DP}}`]: '1x40',
          [`up{${DP}}`]: '1x40',
          [`rtftp_operator_leader{${OP}}`]: '1x40',
          [`rtftp_operator_bootclients{${OP},condition="Conflict",status="True"}`]: '0x40',
        },
        '30m',
        {
          RtftpTransfersFailing: [],
          RtftpDataplaneNotReady: [],
          RtftpDataplaneDown: [],
          RtftpOperatorNoLeader: [],
          RtftpBootClientsInConflict: [],
          // No operator target at all: absent(up) fires.
          RtftpOperatorDown: [
            { severity: 'critical', job: `${RELEASE}-rtftp-operator`, namespace: NAMESPACE },
          ],
        },
      ),
    ];
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
      assert.equal(run.status, 0, run.stdout + run.stderr);
      assert.match(run.stdout, /SUCCESS/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function labelsOf(selector: string): Record<string, string> {
  return Object.fromEntries([...selector.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
}
