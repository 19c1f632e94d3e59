/**
 * docs/runbooks.md against the PrometheusRule the chart renders: every alert's runbook_url
 * resolves to a heading of that page, every section says what the alert means, how to
 * confirm it (a command) and what to do, and the page's table states each alert's real
 * severity and `for:`.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  VALUE_SETS,
  findObject,
  helmMissingReason,
  helmWithValues,
  renderChart,
  repoDir,
} from './helm.ts';

const skip = helmMissingReason();
if (skip) console.log(`# skipped runbook tests: ${skip}`);

const RUNBOOKS = readFileSync(join(repoDir, 'docs/runbooks.md'), 'utf8');
const DEFAULT_URL = 'https://github.com/rtftp/rtftp/blob/main/docs/runbooks.md';

interface Rule {
  alert?: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function alertsOf(values: object): Rule[] {
  const rule = findObject(renderChart(values), 'PrometheusRule');
  return (rule as unknown as { spec: { groups: { rules: Rule[] }[] } }).spec.groups
    .flatMap((g) => g.rules)
    .filter((r) => r.alert);
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function githubAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = !fenced && /^#{1,6}\s+(.*)$/.exec(line);
    if (m) out.add(githubAnchor(m[1]!));
  }
  return out;
}

/** The text of `### <alert>` up to the next heading. */
function section(alert: string): string | undefined {
  const start = RUNBOOKS.indexOf(`\n### ${alert}\n`);
  if (start < 0) return undefined;
  const rest = RUNBOOKS.slice(start + alert.length + 6);
  const end = rest.search(/\n#{1,3} /);
  return end < 0 ? rest : rest.slice(0, end);
}

const ALL = VALUE_SETS.monitoring!;

describe('runbooks', { skip }, () => {
  test('the anchor function matches GitHub on the headings this page uses', () => {
    assert.equal(githubAnchor('RtftpDataplaneDown'), 'rtftpdataplanedown');
    assert.equal(githubAnchor('Version and process metrics'), 'version-and-process-metrics');
    assert.equal(githubAnchor('How the alerts are built'), 'how-the-alerts-are-built');
  });

  test('every runbook_url is the configured page plus an anchor that is a heading of it', () => {
    const rules = alertsOf(ALL);
    assert.ok(rules.length >= 15, `only ${rules.length} alerts rendered`);
    const headings = anchors(RUNBOOKS);
    for (const r of rules) {
      const url = r.annotations?.runbook_url;
      assert.equal(url, `${DEFAULT_URL}#${r.alert!.toLowerCase()}`, `${r.alert}: runbook_url`);
      const anchor = url!.slice(url!.indexOf('#') + 1);
      assert.ok(headings.has(anchor), `${r.alert}: no heading #${anchor} in docs/runbooks.md`);
    }
  });

  test('metrics.prometheusRule.runbookUrl moves every link', () => {
    const base = 'https://wiki.example.org/ops/rtftp';
    const rules = alertsOf({
      ...ALL,
      metrics: {
        ...(ALL as { metrics: object }).metrics,
        prometheusRule: { enabled: true, runbookUrl: base },
      },
    });
    for (const r of rules)
      assert.equal(r.annotations?.runbook_url, `${base}#${r.alert!.toLowerCase()}`);
  });

  test('a runbookUrl that is not an absolute http(s) URL without a fragment is refused', () => {
    for (const runbookUrl of ['docs/runbooks.md', 'https://x.example/runbooks.md#top']) {
      const run = helmWithValues(['template', 'r'], {
        metrics: { prometheusRule: { enabled: true, runbookUrl } },
      });
      assert.notEqual(run.status, 0, runbookUrl);
      assert.match(run.stderr, /metrics\.prometheusRule\.runbookUrl: Does not match pattern/);
    }
  });

  test('every alert has a section that says what it means, how to confirm it and what to do', () => {
    const problems: string[] = [];
    for (const r of alertsOf(ALL)) {
      const text = section(r.alert!);
      if (!text) {
        problems.push(`${r.alert}: no "### ${r.alert}" section`);
        continue;
      }
      for (const part of ['**Means.**', '**Confirm.**', '**Do.**'])
        if (!text.includes(part)) problems.push(`${r.alert}: no ${part}`);
      if (!/```sh\n[^`]*\b(kubectl|curl)\b/.test(text))
        problems.push(`${r.alert}: no command to confirm it`);
    }
    assert.deepEqual(problems, []);
  });

  test('no section for an alert the chart does not have', () => {
    const rendered = new Set(alertsOf(ALL).map((r) => r.alert));
    const documented = [...RUNBOOKS.matchAll(/^### (Rtftp\w+)$/gm)].map((m) => m[1]!);
    assert.deepEqual(
      documented.filter((a) => !rendered.has(a)),
      [],
    );
  });

  test("the page's table states each alert's severity and for: as rendered", () => {
    const rows = new Map(
      [...RUNBOOKS.matchAll(/^\| (Rtftp\w+) \| (\w+) \| ([\w—]+) \|/gm)].map((m) => [
        m[1]!,
        { severity: m[2]!, for: m[3]! },
      ]),
    );
    for (const r of alertsOf(ALL)) {
      assert.deepEqual(
        rows.get(r.alert!),
        { severity: r.labels?.severity, for: r.for ?? '—' },
        `${r.alert} in the table of docs/runbooks.md`,
      );
    }
  });
});
