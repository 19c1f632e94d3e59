import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chartDir, helm, helmMissingReason, repoDir } from './helm.ts';

const skip = helmMissingReason();
if (skip) console.log(`# skipped chart CRD tests: ${skip}`);

const crdFiles = () =>
  readdirSync(join(repoDir, 'crds'))
    .filter((f) => f.endsWith('.yaml'))
    .sort();

describe('chart CRDs', { skip }, () => {
  test('charts/rtftp/crds is a link to crds/, so there is one copy of each CRD', () => {
    const link = join(chartDir, 'crds');
    assert.ok(
      lstatSync(link).isSymbolicLink(),
      'charts/rtftp/crds must stay a symlink to ../../crds',
    );
    assert.equal(readlinkSync(link), '../../crds');
    assert.ok(crdFiles().length >= 1, 'crds/ holds no CRD');
  });

  test('helm installs every CRD of crds/ byte for byte', () => {
    const run = helm(['show', 'crds', chartDir]);
    assert.equal(run.status, 0, run.stderr);
    for (const file of crdFiles()) {
      assert.ok(
        run.stdout.includes(readFileSync(join(repoDir, 'crds', file), 'utf8')),
        `${file} missing or changed`,
      );
    }
  });

  test('the packaged chart carries the CRD files themselves, not links', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rtftp-package-'));
    try {
      const run = helm(['package', chartDir, '--destination', dir]);
      assert.equal(run.status, 0, run.stderr);
      const archive = readdirSync(dir).find((f) => f.endsWith('.tgz'));
      assert.ok(archive);
      const untar = spawnSync('tar', ['xzf', join(dir, archive), '-C', dir], { encoding: 'utf8' });
      assert.equal(untar.status, 0, untar.stderr);
      for (const file of crdFiles()) {
        const packaged = join(dir, 'rtftp/crds', file);
        assert.ok(lstatSync(packaged).isFile(), `${file} is not a regular file in the package`);
        assert.equal(
          readFileSync(packaged, 'utf8'),
          readFileSync(join(repoDir, 'crds', file), 'utf8'),
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
