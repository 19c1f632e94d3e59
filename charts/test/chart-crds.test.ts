/**
 * The CRDs are templates (templates/crds.yaml), as cert-manager ships them, because helm
 * treats its special crds/ directory as install-only: never upgraded, never deleted.
 *
 * With no cluster here, upgrade and uninstall are shown from what helm renders plus its
 * documented semantics (helm.sh/docs/chart_best_practices/custom_resource_definitions and
 * /howto/charts_tips_and_tricks "Tell Helm Not To Uninstall a Resource"):
 * - `helm upgrade` applies every object of the rendered release manifest, which is
 *   exactly `helm template` without --include-crds: a CRD there is upgraded like a
 *   Deployment, a CRD in crds/ is not in it at all;
 * - `helm uninstall` deletes the release manifest's objects except those annotated
 *   `helm.sh/resource-policy: keep`.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import {
  NAMESPACE,
  RELEASE,
  chartDir,
  helm,
  helmMissingReason,
  renderChart,
  repoDir,
} from './helm.ts';
import type { K8sObject } from './helm.ts';

const skip = helmMissingReason();
if (skip) console.log(`# skipped chart CRD tests: ${skip}`);

const KEEP = 'helm.sh/resource-policy';
const crdFiles = () =>
  readdirSync(join(repoDir, 'crds'))
    .filter((f) => f.endsWith('.yaml'))
    .sort();

/** Every CRD the repository's crds/ declares, parsed, by name. */
function sourceCrds(dir = join(repoDir, 'crds')): Map<string, K8sObject> {
  const out = new Map<string, K8sObject>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml')))
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      const crd = doc.toJS() as K8sObject | null;
      if (crd) out.set(crd.metadata.name, crd);
    }
  return out;
}

const renderedCrds = (objects: K8sObject[]) =>
  objects.filter((o) => o.kind === 'CustomResourceDefinition');

/** A rendered CRD without what the chart adds (labels, the keep annotation). */
function withoutChartMetadata(crd: K8sObject): K8sObject {
  const copy = structuredClone(crd) as K8sObject & {
    metadata: { annotations?: Record<string, string> };
  };
  delete copy.metadata.labels;
  delete copy.metadata.annotations?.[KEEP];
  if (copy.metadata.annotations && Object.keys(copy.metadata.annotations).length === 0)
    delete copy.metadata.annotations;
  return copy;
}

describe('chart CRDs', { skip }, () => {
  test('the chart has no crds/ directory: helm has no install-only CRDs to skip on upgrade', () => {
    assert.equal(existsSync(join(chartDir, 'crds')), false);
    const run = helm(['show', 'crds', chartDir]);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), '');
  });

  test('files/crds is a link to crds/, so there is one copy of each CRD', () => {
    const link = join(chartDir, 'files/crds');
    assert.ok(lstatSync(link).isSymbolicLink(), 'charts/rtftp/files/crds must stay a symlink');
    assert.equal(readlinkSync(link), '../../../crds');
    assert.ok(crdFiles().length >= 1, 'crds/ holds no CRD');
  });

  test('every CRD of crds/ is in the release manifest, unchanged but for the chart labels and keep', () => {
    const rendered = renderedCrds(renderChart({}));
    const sources = sourceCrds();
    assert.deepEqual(rendered.map((c) => c.metadata.name).sort(), [...sources.keys()].sort());
    for (const crd of rendered) {
      assert.deepEqual(withoutChartMetadata(crd), sources.get(crd.metadata.name));
      assert.equal(crd.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm');
      assert.equal(
        (crd.metadata as { annotations?: Record<string, string> }).annotations?.[KEEP],
        'keep',
        'helm uninstall must keep the CRD (and every BootClient) by default',
      );
    }
  });

  test('crds.keep=false lets uninstall delete them; crds.install=false renders none', () => {
    for (const crd of renderedCrds(renderChart({ crds: { keep: false } })))
      assert.equal(
        (crd.metadata as { annotations?: Record<string, string> }).annotations?.[KEEP],
        undefined,
      );
    assert.deepEqual(renderedCrds(renderChart({ crds: { install: false } })), []);
  });

  test('helm upgrade applies a changed CRD, and a CRD added to crds/ needs no template change', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rtftp-crd-upgrade-'));
    try {
      // The next chart version: a copy whose CRD gained a printer column, plus a new CRD file.
      const copy = join(dir, 'rtftp');
      cpSync(chartDir, copy, { recursive: true, dereference: true });
      const crdDir = join(copy, 'files/crds');
      const file = join(crdDir, crdFiles()[0]!);
      const text = readFileSync(file, 'utf8');
      const changed = text.replace(
        'additionalPrinterColumns:\n',
        'additionalPrinterColumns:\n        - { name: Upgraded, type: string, jsonPath: .spec.upgraded }\n',
      );
      assert.notEqual(changed, text, 'the test could not change the CRD');
      writeFileSync(file, changed);
      const extra = structuredClone(sourceCrds(crdDir).values().next().value!) as K8sObject & {
        spec: { names: Record<string, string>; group: string };
      };
      extra.metadata.name = `widgets.${extra.spec.group}`;
      extra.spec.names = {
        kind: 'Widget',
        listKind: 'WidgetList',
        plural: 'widgets',
        singular: 'widget',
      };
      writeFileSync(join(crdDir, 'widgets.yaml'), JSON.stringify(extra));

      const run = helm(['template', RELEASE, copy, '-n', NAMESPACE]);
      assert.equal(run.status, 0, run.stderr);
      const manifest = parseAllDocuments(run.stdout)
        .map((d) => d.toJS() as K8sObject | null)
        .filter((o): o is K8sObject => o !== null);
      const crds = renderedCrds(manifest);
      assert.ok(
        crds.some((c) => JSON.stringify(c).includes('.spec.upgraded')),
        'the changed CRD is not in the manifest helm upgrade applies',
      );
      assert.ok(crds.some((c) => c.metadata.name === extra.metadata.name));
      assert.equal(crds.length, crdFiles().length + 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
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
        const packaged = join(dir, 'rtftp/files/crds', file);
        assert.ok(lstatSync(packaged).isFile(), `${file} is not a regular file in the package`);
        assert.equal(
          readFileSync(packaged, 'utf8'),
          readFileSync(join(repoDir, 'crds', file), 'utf8'),
        );
      }
      assert.equal(existsSync(join(dir, 'rtftp/crds')), false);
      // The packaged chart renders the same CRDs as the source tree.
      const fromPackage = helm(['template', RELEASE, join(dir, archive), '-n', NAMESPACE]);
      assert.equal(fromPackage.status, 0, fromPackage.stderr);
      assert.equal(
        (fromPackage.stdout.match(/^kind: CustomResourceDefinition$/gm) ?? []).length,
        crdFiles().length,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
