/**
 * The chart's image values (values.yaml, "Images"), rendered by real helm: one image per
 * component, a shared registry and tag, per-component overrides, digest pinning, the
 * native-only dataplane flavor, and the sync sidecar following the operator image.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { containerOf, findObject, helmMissingReason, helmWithValues, renderChart } from './helm.ts';

const skip = helmMissingReason();
if (skip) console.log(`# skipped chart image tests: ${skip}`);

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

function images(values: object) {
  const objects = renderChart(values);
  const ds = findObject(objects, 'DaemonSet');
  const deploy = findObject(objects, 'Deployment');
  const pick = (c: { image?: string; imagePullPolicy?: string }) => [c.image, c.imagePullPolicy];
  return {
    operator: pick(containerOf(deploy, 'operator')),
    tftp: pick(containerOf(ds, 'tftp')),
    sync: pick(containerOf(ds, 'config-sync')),
  };
}

describe('chart images', { skip }, () => {
  test('defaults: one repository per component under the registry, tagged with appVersion', () => {
    assert.deepEqual(images({}), {
      operator: ['ghcr.io/rtftp/rtftp-operator:0.1.0', 'IfNotPresent'],
      tftp: ['ghcr.io/rtftp/rtftp-dataplane:0.1.0', 'IfNotPresent'],
      sync: ['ghcr.io/rtftp/rtftp-operator:0.1.0', 'IfNotPresent'],
    });
  });

  test('image.registry and image.tag apply to every component; a component tag wins', () => {
    assert.deepEqual(
      images({
        image: { registry: 'registry.example.net:5000/boot/', tag: '1.2.3', pullPolicy: 'Always' },
        dataplane: { image: { tag: '1.2.4', pullPolicy: 'Never' } },
      }),
      {
        operator: ['registry.example.net:5000/boot/rtftp-operator:1.2.3', 'Always'],
        tftp: ['registry.example.net:5000/boot/rtftp-dataplane:1.2.4', 'Never'],
        sync: ['registry.example.net:5000/boot/rtftp-operator:1.2.3', 'Always'],
      },
    );
  });

  test('a digest pins the image and wins over the tag; the sidecar follows the operator', () => {
    const got = images({ image: { tag: '9.9.9' }, operator: { image: { digest: DIGEST } } });
    assert.equal(got.operator[0], `ghcr.io/rtftp/rtftp-operator@${DIGEST}`);
    assert.equal(got.sync[0], `ghcr.io/rtftp/rtftp-operator@${DIGEST}`);
    assert.equal(got.tftp[0], 'ghcr.io/rtftp/rtftp-dataplane:9.9.9');
  });

  test('flavor native is the dataplane tag plus -native; a digest still pins it', () => {
    assert.equal(
      images({ dataplane: { image: { flavor: 'native' } } }).tftp[0],
      'ghcr.io/rtftp/rtftp-dataplane:0.1.0-native',
    );
    assert.equal(
      images({ dataplane: { image: { flavor: 'native', digest: DIGEST } } }).tftp[0],
      `ghcr.io/rtftp/rtftp-dataplane@${DIGEST}`,
    );
  });

  test('the sidecar gets its own image when given a repository; an empty registry means full repositories', () => {
    const got = images({
      image: { registry: '' },
      operator: { image: { repository: 'quay.io/me/op' } },
      dataplane: {
        image: { repository: 'quay.io/me/dp' },
        configSync: { image: { repository: 'quay.io/me/sync', tag: 's1' } },
      },
    });
    assert.deepEqual(
      [got.operator[0], got.tftp[0], got.sync[0]],
      ['quay.io/me/op:0.1.0', 'quay.io/me/dp:0.1.0', 'quay.io/me/sync:s1'],
    );
  });

  for (const [name, values, message] of [
    [
      'a digest that is not sha256:<64 hex>',
      { operator: { image: { digest: 'latest' } } },
      /operator\.image\.digest: Does not match pattern/,
    ],
    [
      'an unknown flavor',
      { dataplane: { image: { flavor: 'slim' } } },
      /dataplane\.image\.flavor must be one of the following: "full", "native"/,
    ],
    [
      'a tag in the repository',
      { dataplane: { image: { repository: 'rtftp-dataplane:1.0' } } },
      /dataplane\.image\.repository: Does not match pattern/,
    ],
    [
      'the old single image.repository',
      { image: { repository: 'ghcr.io/rtftp/rtftp' } },
      /image: Additional property repository is not allowed/,
    ],
  ] as const) {
    test(`the schema rejects ${name}`, () => {
      const run = helmWithValues(['template', 'boot'], values);
      assert.notEqual(run.status, 0);
      assert.match(run.stderr, message);
    });
  }
});
