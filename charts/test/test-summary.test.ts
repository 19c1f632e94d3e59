/**
 * scripts/test-summary-reporter.mjs: the closing line each test run prints (Node 20, then
 * Node 22 in scripts/test.sh), in the "N passed, N failed" form CI reads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoDir } from './helm.ts';

test('the summary line counts passed, failed (cancelled included) and skipped tests', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rtftp-summary-'));
  try {
    const file = join(dir, 'sample.test.mjs');
    writeFileSync(
      file,
      [
        "import { test, describe } from 'node:test';",
        "test('passes', () => {});",
        "test('fails', () => { throw new Error('on purpose'); });",
        "test('is skipped', { skip: 'on purpose' }, () => {});",
        "describe('a suite', () => {",
        "  test('passes too', (t) => { t.diagnostic('pass 99'); });",
        "  test('times out', { timeout: 10 }, () => new Promise((r) => setTimeout(r, 500)));",
        '});',
      ].join('\n'),
    );
    // A child of a test file must not look like one (node:test would skip its files).
    const childEnv: NodeJS.ProcessEnv = { ...process.env, RTFTP_TEST_LABEL: '' };
    delete childEnv.NODE_TEST_CONTEXT;
    const run = spawnSync(
      process.execPath,
      [
        '--test',
        '--test-reporter=spec',
        '--test-reporter-destination=stdout',
        `--test-reporter=${join(repoDir, 'scripts/test-summary-reporter.mjs')}`,
        '--test-reporter-destination=stdout',
        file,
      ],
      { encoding: 'utf8', timeout: 60_000, env: childEnv },
    );
    assert.equal(run.status, 1, run.stdout + run.stderr);
    const major = process.versions.node.split('.')[0];
    const lines = run.stdout.trim().split('\n');
    assert.ok(
      lines.includes(`node${major}: 2 passed, 2 failed, 1 skipped`),
      `no summary line in:\n${run.stdout}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
