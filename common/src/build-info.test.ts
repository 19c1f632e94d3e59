import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { buildInfoGauge, packageRoot, readBuildInfo } from './build-info.ts';

function withPackage(fn: (root: string) => void, version = '1.2.3') {
  const root = mkdtempSync(join(tmpdir(), 'rtftp-build-info-'));
  try {
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'rtftp', version }));
    fn(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const noGit = () => null;

test('the revision comes from RTFTP_REVISION first, then the REVISION file, then git', () => {
  withPackage((root) => {
    writeFileSync(join(root, 'REVISION'), 'from-file\n');
    const git = () => 'from-git\n';
    assert.equal(
      readBuildInfo({ root, git, env: { RTFTP_REVISION: ' from-env ' } }).revision,
      'from-env',
    );
    assert.equal(readBuildInfo({ root, git, env: {} }).revision, 'from-file');
    assert.equal(readBuildInfo({ root, git, env: { RTFTP_REVISION: '' } }).revision, 'from-file');
    rmSync(join(root, 'REVISION'));
    assert.equal(readBuildInfo({ root, git, env: {} }).revision, 'from-git');
    assert.equal(readBuildInfo({ root, git: noGit, env: {} }).revision, 'unknown');
  });
});

test('a revision that is not one line of at most 64 characters is ignored', () => {
  withPackage((root) => {
    assert.equal(
      readBuildInfo({ root, git: noGit, env: { RTFTP_REVISION: 'x'.repeat(65) } }).revision,
      'unknown',
    );
    assert.equal(
      readBuildInfo({ root, git: noGit, env: { RTFTP_REVISION: 'abc\nrest' } }).revision,
      'abc',
    );
  });
});

test("the version is package.json's and node_version is the running Node", () => {
  withPackage((root) => {
    const info = readBuildInfo({ root, git: noGit, env: {} });
    assert.equal(info.version, '4.5.6');
    assert.equal(info.nodeVersion, process.version);
  }, '4.5.6');
  assert.deepEqual(readBuildInfo({ root: null, env: {} }), {
    version: 'unknown',
    revision: 'unknown',
    nodeVersion: process.version,
  });
});

test('in this checkout the revision is the commit git reports', (t) => {
  const root = packageRoot();
  assert.ok(root, 'package root of rtftp not found');
  let head: string;
  try {
    head = execFileSync('git', ['-C', root, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    t.skip('not a git checkout (or no git)');
    return;
  }
  assert.equal(readBuildInfo({ env: {} }).revision, head);
});

test('rtftp_build_info exposes the four labels with value 1', async () => {
  const registry = new Registry();
  buildInfoGauge([registry], 'dataplane', {
    version: '1.0.0',
    revision: 'abc123',
    nodeVersion: 'v22.1.0',
  });
  assert.match(
    await registry.metrics(),
    /^rtftp_build_info\{component="dataplane",version="1\.0\.0",revision="abc123",node_version="v22\.1\.0"\} 1$/m,
  );
});
