/**
 * Holds the CRD YAML, the TS schema it is generated from, and the operator's validation
 * together: the committed YAML is exactly the generated one; every field teaches
 * `kubectl explain`; and whatever the API server's schema rejects, the operator rejects too
 * (so an object the server let through is judged by the same rules the dataplane applies).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { validateBootClientSpec } from '../../common/src/bootclient.ts';
import { parse } from 'yaml';
import {
  BOOTNETWORK_CRD_YAML_HEADER,
  CRD_FILES,
  CRD_YAML_HEADER,
  renderCrdYaml,
} from '../scripts/crd-yaml.ts';
import { buildBootNetworkCrd } from '../../common/src/bootnetwork-schema.ts';
import { compileBootNetwork } from '../../common/src/bootnetwork.ts';
import { loadCrd } from './fake-apiserver/crd-validator.ts';

const CRD_FILE = fileURLToPath(new URL('../../crds/bootclients.rtftp.io.yaml', import.meta.url));

test('crds/bootclients.rtftp.io.yaml is what the TS schema generates', () => {
  // Compared as data: prettier may restyle the YAML (quotes), never its content.
  const committed = readFileSync(CRD_FILE, 'utf8');
  assert.ok(committed.startsWith(CRD_YAML_HEADER));
  assert.deepEqual(
    parse(committed),
    parse(renderCrdYaml()),
    'run: node --import tsx operator/scripts/generate-crd.ts',
  );
});

/** Every schema field without a description (`kubectl explain` would show nothing). */
function fieldsWithoutDescription(schema: object): string[] {
  const missing: string[] = [];
  const walk = (node: Record<string, unknown>, path: string) => {
    if (path !== 'metadata' && !node.description) missing.push(path || '<root>');
    for (const [k, v] of Object.entries(
      (node.properties ?? {}) as Record<string, Record<string, unknown>>,
    ))
      walk(v, path ? `${path}.${k}` : k);
    if (node.items) walk(node.items as Record<string, unknown>, `${path}[]`);
  };
  walk(schema as Record<string, unknown>, '');
  return missing;
}

test('every schema field has a description', async () => {
  const { buildBootClientCrd } = await import('../../common/src/bootclient-schema.ts');
  assert.deepEqual(
    fieldsWithoutDescription(buildBootClientCrd().spec.versions[0]!.schema.openAPIV3Schema),
    [],
  );
});

const crd = loadCrd(CRD_FILE);
const serverAccepts = (spec: unknown) =>
  crd.validate({
    apiVersion: 'rtftp.io/v1alpha1',
    kind: 'BootClient',
    metadata: {},
    spec: structuredClone(spec),
  }).length === 0;

const validSpec = fc.record({
  ip: fc.oneof(fc.ipV4(), fc.constantFrom('fd00::5', '2001:db8::1', '::1')),
  nbd: fc.record({
    url: fc.constantFrom(
      'nbd://10.0.0.1/disk',
      'nbd://[fd00::1]:10810/x',
      'nbd+unix:///e?socket=/run/nbd.sock',
    ),
  }),
  mounts: fc.constantFrom(
    [
      { partition: 2, mountpoint: '/' },
      { partition: 1, mountpoint: '/boot' },
    ],
    [{ partition: 0, mountpoint: '/' }],
  ),
  tftpRoot: fc.constantFrom('/', '/boot', '/boot/efi'),
  idleTimeout: fc.option(fc.integer({ min: 1, max: 604800 }), { nil: undefined }),
  backend: fc.option(fc.constantFrom('auto', 'native', 'guestfs'), { nil: undefined }),
  serial: fc.option(fc.stringMatching(/^[0-9a-fA-F]{8}$/), { nil: undefined }),
});

test('valid specs pass both the CRD schema and the operator', () => {
  fc.assert(
    fc.property(validSpec, (spec) => {
      const clean = JSON.parse(JSON.stringify(spec));
      assert.ok(serverAccepts(clean), JSON.stringify(clean));
      assert.ok(validateBootClientSpec(clean).ok, JSON.stringify(clean));
    }),
    { numRuns: 200 },
  );
});

test('whatever the CRD schema rejects, the operator rejects too', () => {
  const mutation = fc.constantFrom<[string, unknown]>(
    ['ip', 'not-an-ip'],
    ['ip', '10.0.0.256'],
    ['ip', 42],
    ['nbd', { url: 'http://x/y' }],
    ['nbd', {}],
    ['mounts', []],
    ['mounts', [{ partition: 1, mountpoint: '/boot' }]],
    ['mounts', [{ partition: 129, mountpoint: '/' }]],
    ['mounts', [{ partition: 1, mountpoint: 'relative' }]],
    ['tftpRoot', 'boot'],
    ['tftpRoot', undefined],
    ['idleTimeout', 0],
    ['idleTimeout', 1.5],
    ['backend', 'fuse'],
    ['prefetch', 'yes'],
    ['serial', '1a2b3c4'],
    ['serial', '1a2b3c4d5'],
    ['serial', '1a2b3c4g'],
    ['serial', ' 1a2b3c4'],
    ['serial', ''],
    ['serial', 12345678],
  );
  fc.assert(
    fc.property(validSpec, mutation, (spec, [field, value]) => {
      const bad = { ...JSON.parse(JSON.stringify(spec)), [field]: value };
      if (value === undefined) delete bad[field];
      assert.equal(serverAccepts(bad), false, `server accepted ${JSON.stringify(bad)}`);
      assert.equal(
        validateBootClientSpec(bad).ok,
        false,
        `operator accepted ${JSON.stringify(bad)}`,
      );
    }),
    { numRuns: 200 },
  );
});

// BootNetwork: the same three guarantees.
const BN_FILE = fileURLToPath(new URL('../../crds/bootnetworks.rtftp.io.yaml', import.meta.url));

test('every CRD file in crds/ is what its TS schema generates', () => {
  for (const [file, generate] of Object.entries(CRD_FILES)) {
    const committed = readFileSync(
      fileURLToPath(new URL(`../../crds/${file}`, import.meta.url)),
      'utf8',
    );
    assert.deepEqual(
      parse(committed),
      parse(generate()),
      `${file}: run operator/scripts/generate-crd.ts`,
    );
  }
  assert.ok(readFileSync(BN_FILE, 'utf8').startsWith(BOOTNETWORK_CRD_YAML_HEADER));
});

test('every BootNetwork schema field has a description; it is cluster-scoped with a status', () => {
  const crd = buildBootNetworkCrd();
  assert.deepEqual(fieldsWithoutDescription(crd.spec.versions[0]!.schema.openAPIV3Schema), []);
  assert.equal(crd.spec.scope, 'Cluster');
  assert.deepEqual(crd.spec.versions[0]!.subresources, { status: {} });
});

test('the BootNetwork schema keeps label maps, prunes unknown fields, refuses bad shapes; the operator refuses the rest', () => {
  const bn = loadCrd(BN_FILE);
  const obj = (spec: unknown) => ({
    apiVersion: 'rtftp.io/v1alpha1',
    kind: 'BootNetwork',
    metadata: { name: 'x' },
    spec,
  });
  const good = obj({
    clientCIDRs: ['10.0.1.0/24'],
    namespaces: { names: ['a'], namespaceSelector: { matchLabels: { team: 'a' } } },
    nbdServers: [{ cidr: '10.0.2.0/24', ports: [{ port: 10809, endPort: 10810 }], bogus: 1 }],
    unixSockets: ['/run/nbd.sock'],
    extra: true,
  });
  assert.deepEqual(bn.validate(good), []);
  const spec = good.spec as Record<string, unknown>;
  assert.equal(spec.extra, undefined, 'unknown field pruned');
  assert.deepEqual((spec.namespaces as { namespaceSelector: unknown }).namespaceSelector, {
    matchLabels: { team: 'a' },
  });
  assert.equal((spec.nbdServers as Record<string, unknown>[])[0]!.bogus, undefined);
  for (const bad of [
    { namespaces: { names: ['a'] } },
    { clientCIDRs: ['not a cidr'], namespaces: {} },
    {
      clientCIDRs: ['10.0.0.0/8'],
      namespaces: {},
      nbdServers: [{ cidr: '10.0.0.0/8', ports: [{ port: 0 }] }],
    },
    { clientCIDRs: ['10.0.0.0/8'], namespaces: {}, unixSockets: ['relative'] },
  ])
    assert.notDeepEqual(bn.validate(obj(bad)), [], JSON.stringify(bad));
  // Shapes the schema lets through, the operator still refuses (and says so in status).
  const passes = { clientCIDRs: ['10.0.0.1/8'], namespaces: { names: ['a'] } };
  assert.deepEqual(bn.validate(obj(passes)), []);
  assert.equal(compileBootNetwork({ metadata: { name: 'x' }, spec: passes }).ok, false);
});
