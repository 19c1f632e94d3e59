/**
 * The fake API server keeps the semantics the operator relies on, checked through the
 * real @kubernetes/client-node over HTTP.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  V1MicroTime,
  Watch,
} from '@kubernetes/client-node';
import { FakeApiServer } from './server.ts';

const ns = 'fake';
const group = 'rtftp.io';
const version = 'v1alpha1';
const plural = 'bootclients';
let server: FakeApiServer;
let dir: string;
let custom: CustomObjectsApi;
let core: CoreV1Api;
let coordination: CoordinationV1Api;
let watch: Watch;

before(async () => {
  server = new FakeApiServer({ maxHistory: 50 });
  await server.listen();
  dir = mkdtempSync(join(tmpdir(), 'rtftp-fake-'));
  const kc = new KubeConfig();
  kc.loadFromFile(server.writeKubeconfig(join(dir, 'kubeconfig'), ns));
  custom = kc.makeApiClient(CustomObjectsApi);
  core = kc.makeApiClient(CoreV1Api);
  coordination = kc.makeApiClient(CoordinationV1Api);
  watch = new Watch(kc);
});

after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const spec = (ip: string) => ({
  ip,
  nbd: { url: 'nbd://10.0.0.1/d' },
  mounts: [{ partition: 1, mountpoint: '/' }],
  tftpRoot: '/boot',
});

const createBootClient = (metadata: Record<string, unknown>, body: unknown) =>
  custom.createNamespacedCustomObject({
    group,
    version,
    namespace: ns,
    plural,
    body: { apiVersion: `${group}/${version}`, kind: 'BootClient', metadata, spec: body },
  });

type Bc = { metadata: Record<string, unknown>; spec: Record<string, unknown>; status?: unknown };

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    return (err as { code: number }).code;
  }
}

test('create sets generation 1 and a resourceVersion; status on create is dropped; unknown fields pruned', async () => {
  const body = {
    apiVersion: `${group}/${version}`,
    kind: 'BootClient',
    metadata: { name: 'a' },
    spec: { ...spec('10.0.0.2'), extra: 1 },
    status: { observedGeneration: 9 },
  };
  const bc = (await custom.createNamespacedCustomObject({
    group,
    version,
    namespace: ns,
    plural,
    body,
  })) as Bc;
  assert.equal(bc.metadata.generation, 1);
  assert.ok(bc.metadata.resourceVersion);
  assert.equal(bc.status, undefined);
  assert.equal('extra' in bc.spec, false);
});

test('a schema violation is 422 Invalid (a mount at "/" is required by a CEL rule)', async () => {
  const body = {
    apiVersion: `${group}/${version}`,
    kind: 'BootClient',
    metadata: { name: 'bad' },
    spec: { ...spec('10.0.0.3'), mounts: [{ partition: 1, mountpoint: '/boot' }] },
  };
  assert.equal(
    await status(
      custom.createNamespacedCustomObject({ group, version, namespace: ns, plural, body }),
    ),
    422,
  );
});

test('spec change bumps generation; a stale resourceVersion is 409; status is ignored on the main resource', async () => {
  const bc = (await custom.getNamespacedCustomObject({
    group,
    version,
    namespace: ns,
    plural,
    name: 'a',
  })) as Bc;
  const updated = (await custom.replaceNamespacedCustomObject({
    group,
    version,
    namespace: ns,
    plural,
    name: 'a',
    body: { ...bc, spec: spec('10.0.0.4'), status: { observedGeneration: 5 } },
  })) as Bc;
  assert.equal(updated.metadata.generation, 2);
  assert.equal(updated.status, undefined);
  assert.equal(
    await status(
      custom.replaceNamespacedCustomObject({
        group,
        version,
        namespace: ns,
        plural,
        name: 'a',
        body: bc,
      }),
    ),
    409,
  );
  const st = (await custom.replaceNamespacedCustomObjectStatus({
    group,
    version,
    namespace: ns,
    plural,
    name: 'a',
    body: { ...updated, spec: spec('10.9.9.9'), status: { observedGeneration: 2 } },
  })) as Bc;
  assert.deepEqual(st.status, { observedGeneration: 2 });
  assert.equal(st.spec.ip, '10.0.0.4', '/status changes only status');
  assert.equal(st.metadata.generation, 2);
  assert.equal(server.statusWrites.get(`${ns}/a`), 1);
});

test('finalizers hold a deleted object with a deletionTimestamp until they are removed', async () => {
  await createBootClient({ name: 'f', finalizers: ['x/y'] }, spec('10.0.0.6'));
  await custom.deleteNamespacedCustomObject({ group, version, namespace: ns, plural, name: 'f' });
  const held = (await custom.getNamespacedCustomObject({
    group,
    version,
    namespace: ns,
    plural,
    name: 'f',
  })) as Bc;
  assert.ok(held.metadata.deletionTimestamp);
  await custom.replaceNamespacedCustomObject({
    group,
    version,
    namespace: ns,
    plural,
    name: 'f',
    body: { ...held, metadata: { ...held.metadata, finalizers: [] } },
  });
  assert.equal(
    await status(
      custom.getNamespacedCustomObject({ group, version, namespace: ns, plural, name: 'f' }),
    ),
    404,
  );
});

test('Lease times must be MicroTime: V1MicroTime passes, a millisecond Date is 400', async () => {
  const lease = (t: Date) => ({
    metadata: { name: 'l' },
    spec: { holderIdentity: 'me', renewTime: t },
  });
  assert.equal(
    await status(
      coordination.createNamespacedLease({ namespace: ns, body: lease(new Date()) as never }),
    ),
    400,
  );
  assert.equal(
    await status(
      coordination.createNamespacedLease({ namespace: ns, body: lease(new V1MicroTime()) }),
    ),
    200,
  );
});

test('ConfigMaps over 1 MiB are refused', async () => {
  const body = { metadata: { name: 'big' }, data: { k: 'x'.repeat(1024 * 1024 + 1) } };
  assert.equal(await status(core.createNamespacedConfigMap({ namespace: ns, body })), 422);
});

test('a watch replays from a resourceVersion, and gets 410 Gone once history is compacted', async () => {
  const list = (await custom.listNamespacedCustomObject({
    group,
    version,
    namespace: ns,
    plural,
  })) as { metadata: { resourceVersion: string } };
  const from = list.metadata.resourceVersion;
  await createBootClient({ name: 'w' }, spec('10.0.0.7'));
  const seen: string[] = [];
  await new Promise<void>((resolve) => {
    void watch.watch(
      `/apis/${group}/${version}/namespaces/${ns}/${plural}`,
      { resourceVersion: from, timeoutSeconds: 1 },
      (type, obj) => seen.push(`${type} ${obj.metadata.name}`),
      () => resolve(),
    );
  });
  assert.deepEqual(seen, ['ADDED w']);
  server.store.compact();
  const errors: number[] = [];
  await new Promise<void>((resolve) => {
    void watch.watch(
      `/apis/${group}/${version}/namespaces/${ns}/${plural}`,
      { resourceVersion: from },
      (type, obj) => type === 'ERROR' && errors.push(obj.code),
      () => resolve(),
    );
  });
  assert.deepEqual(errors, [410]);
});

test('dropWatches ends open watches', async () => {
  const ended = new Promise<void>((resolve) => {
    void watch.watch(
      `/api/v1/namespaces/${ns}/configmaps`,
      {},
      () => undefined,
      () => resolve(),
    );
  });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(server.dropWatches(), 1);
  await ended;
});

test('injected latency delays every request; injected write failures are 500 without effect', async () => {
  server.faults.latencyMs = 150;
  const t0 = Date.now();
  await core.listNamespacedConfigMap({ namespace: ns });
  assert.ok(Date.now() - t0 >= 140);
  server.faults.latencyMs = 0;
  server.faults.failWriteRatio = 1;
  try {
    const body = { metadata: { name: 'never' }, data: {} };
    assert.equal(await status(core.createNamespacedConfigMap({ namespace: ns, body })), 500);
  } finally {
    server.faults.failWriteRatio = 0;
  }
  assert.equal(await status(core.readNamespacedConfigMap({ namespace: ns, name: 'never' })), 404);
});

test('a cluster-scoped BootNetwork: no namespace in its path, status split, generation, watch', async () => {
  const body = {
    apiVersion: `${group}/${version}`,
    kind: 'BootNetwork',
    metadata: { name: 'lab' },
    spec: {
      clientCIDRs: ['10.0.0.0/24'],
      namespaces: { namespaceSelector: { matchLabels: { team: 'a' } } },
    },
    status: { conditions: [] },
  };
  const events: string[] = [];
  const controller = await watch.watch(
    `/apis/${group}/${version}/bootnetworks`,
    {},
    (type, obj: { metadata: { name: string } }) => events.push(`${type} ${obj.metadata.name}`),
    () => undefined,
  );
  const created = (await custom.createClusterCustomObject({
    group,
    version,
    plural: 'bootnetworks',
    body,
  })) as { metadata: Record<string, unknown>; spec: Record<string, unknown>; status?: unknown };
  assert.equal(created.metadata.namespace, undefined);
  assert.equal(created.metadata.generation, 1);
  assert.equal(created.status, undefined, 'status is set through /status only');
  assert.deepEqual(
    (created.spec.namespaces as Record<string, unknown>).namespaceSelector,
    { matchLabels: { team: 'a' } },
    'a map the schema allows survives pruning',
  );
  const listed = (await custom.listClusterCustomObject({
    group,
    version,
    plural: 'bootnetworks',
  })) as {
    items: unknown[];
  };
  assert.equal(listed.items.length, 1);
  // Under a namespace it does not exist; a BootClient has no path without one.
  const raw = (path: string) => fetch(server.url + path).then((r) => r.status);
  assert.equal(await raw(`/apis/${group}/${version}/namespaces/${ns}/bootnetworks/lab`), 404);
  assert.equal(await raw(`/apis/${group}/${version}/bootclients/any`), 404);
  await custom.replaceClusterCustomObjectStatus({
    group,
    version,
    plural: 'bootnetworks',
    name: 'lab',
    body: { ...created, status: { observedGeneration: 1 } },
  });
  const got = (await custom.getClusterCustomObject({
    group,
    version,
    plural: 'bootnetworks',
    name: 'lab',
  })) as {
    metadata: { generation: number };
    status: unknown;
  };
  assert.deepEqual(got.status, { observedGeneration: 1 });
  assert.equal(got.metadata.generation, 1, 'a status write bumps no generation');
  await custom.deleteClusterCustomObject({ group, version, plural: 'bootnetworks', name: 'lab' });
  await new Promise((r) => setTimeout(r, 100));
  controller.abort();
  assert.deepEqual(
    events.filter((e) => !e.startsWith('BOOKMARK')),
    ['ADDED lab', 'MODIFIED lab', 'DELETED lab'],
  );
});

test('Namespaces are cluster-scoped objects with labels, listed and updated like the real ones', async () => {
  await core.createNamespace({ body: { metadata: { name: 'tenant-x', labels: { team: 'x' } } } });
  const got = await core.readNamespace({ name: 'tenant-x' });
  assert.deepEqual(got.metadata?.labels, { team: 'x' });
  assert.equal(got.metadata?.namespace, undefined);
  got.metadata!.labels = { team: 'y' };
  await core.replaceNamespace({ name: 'tenant-x', body: got });
  const list = await core.listNamespace();
  assert.deepEqual(
    list.items.filter((n) => n.metadata?.name === 'tenant-x').map((n) => n.metadata?.labels),
    [{ team: 'y' }],
  );
});
