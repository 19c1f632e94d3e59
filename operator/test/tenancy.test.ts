/**
 * Tenant boundaries with the real operator (--all-namespaces) and sync processes against
 * the in-process API server: BootNetwork admission, the claim ledger across deletes,
 * re-creates, finalizers and restarts, status that never names another namespace, and a
 * sync sidecar that serves only what the operator wrote.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { REPO_CRD_DIR } from './fake-apiserver/resources.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bootClient,
  startOperator,
  startSync,
  startTestCluster,
  waitFor,
  type KubeObjectInput,
  type SpawnedProcess,
  type TestCluster,
} from './helpers/cluster.ts';

let cluster: TestCluster;
let sync: SpawnedProcess;
let operator: SpawnedProcess & { port: number };
let dir: string;
const TENANCY_ARGS = [
  '--all-namespaces',
  '--service-cidrs',
  '10.96.0.0/12',
  '--pod-cidrs',
  '10.244.0.0/16',
  '--watch-timeout',
  '3',
];
const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Cond = { type: string; status: string; reason: string; message: string };
async function conditions(kind: string, name: string, namespace?: string) {
  const obj = (await cluster.get(kind, name, namespace)) as {
    status?: { conditions?: Cond[] };
  } | null;
  return Object.fromEntries((obj?.status?.conditions ?? []).map((c) => [c.type, c]));
}
const waitCondition = (
  name: string,
  namespace: string,
  type: string,
  pred: (c: Cond) => boolean,
  what: string,
) =>
  waitFor(
    async () => {
      const c = (await conditions('BootClient', name, namespace))[type];
      return c && pred(c) ? c : null;
    },
    8000,
    what,
  );
const fileText = (ip: string) => {
  const f = join(dir, `${ip}.nbd`);
  return existsSync(f) ? readFileSync(f, 'utf8') : null;
};
const inNs = (ns: string, obj: KubeObjectInput): KubeObjectInput => ({
  ...obj,
  metadata: { ...obj.metadata, namespace: ns },
});
const bootNetwork = (name: string, spec: Record<string, unknown>): KubeObjectInput => ({
  apiVersion: 'rtftp.io/v1alpha1',
  kind: 'BootNetwork',
  metadata: { name },
  spec,
});
/** Admits tenant-a and tenant-b for 10.10.5.0/24, disks on 10.20.0.0/24. */
const SHARED_POOL = bootNetwork('shared-pool', {
  clientCIDRs: ['10.10.5.0/24'],
  namespaces: { names: ['tenant-a', 'tenant-b'] },
  nbdServers: [{ cidr: '10.20.0.0/24' }],
});
/** Everything tenant-b can read about its own objects: conditions and Events. */
async function visibleTo(namespace: string, name: string): Promise<string> {
  const obj = await cluster.get('BootClient', name, namespace);
  const events = cluster.server.store
    .list('events.k8s.io/v1/events', namespace)
    .map((e) => `${e.reason} ${e.note}`);
  return JSON.stringify({ status: obj?.status, events });
}

/** Stops the operator and starts another (new identity), the claim ledger only in the API. */
async function restartOperator(identity: string, args = TENANCY_ARGS) {
  await operator.stop();
  operator = await startOperator({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    identity,
    args,
  });
  await operator.waitForLog((l) => l.msg === 'Leadership acquired', 15_000);
}

before(async () => {
  cluster = await startTestCluster({ namespace: 'rtftp' });
  dir = mkdtempSync(join(tmpdir(), 'rtftp-tenancy-'));
  sync = await startSync({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    dir,
    args: ['--watch-timeout', '3'],
  });
  operator = await startOperator({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    identity: 'op-tenancy',
    args: TENANCY_ARGS,
  });
  await operator.waitForLog((l) => l.msg === 'Leadership acquired');
});

after(async () => {
  await Promise.all([operator?.stop(), sync?.stop()]);
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('without a BootNetwork a tenant renders nothing; the operator namespace renders as before', async () => {
  await cluster.apply(
    inNs('tenant-z', bootClient('board', { ip: '10.10.0.5', url: 'nbd://10.20.0.7/z' })),
  );
  await cluster.apply(bootClient('admin-board', { ip: '10.10.0.6', url: 'nbd://127.0.0.1/disk' }));
  const c = await waitCondition(
    'board',
    'tenant-z',
    'Accepted',
    (x) => x.reason === 'NotPermitted',
    'NotPermitted',
  );
  assert.equal(c.status, 'False');
  assert.match(c.message, /no BootNetwork admits namespace tenant-z/);
  await waitFor(() => fileText('10.10.0.6'), 5000, 'the admin namespace renders');
  assert.doesNotMatch(
    fileText('10.10.0.6')!,
    /nbd_allow/,
    'the admin namespace is trusted as before',
  );
  assert.equal(fileText('10.10.0.5'), null);
  await waitFor(
    () =>
      cluster.server.store
        .list('events.k8s.io/v1/events', 'tenant-z')
        .some((e) => e.reason === 'NotPermitted'),
    5000,
    'NotPermitted Event',
  );
});

test('tenant A cannot claim an IP outside its BootNetwork; inside it, its config carries the allow-list', async () => {
  await cluster.apply(
    bootNetwork('lab-a', {
      clientCIDRs: ['10.10.1.0/24'],
      namespaces: { names: ['tenant-a'] },
      nbdServers: [{ cidr: '10.20.0.0/24', ports: [{ port: 10809 }] }],
    }),
  );
  await waitFor(
    async () => (await conditions('BootNetwork', 'lab-a')).Accepted?.status === 'True',
    5000,
    'BootNetwork Accepted',
  );
  await cluster.apply(
    inNs('tenant-a', bootClient('outside', { ip: '10.10.9.5', url: 'nbd://10.20.0.7/a' })),
  );
  await cluster.apply(
    inNs('tenant-a', bootClient('inside', { ip: '10.10.1.5', url: 'nbd://10.20.0.7/a' })),
  );
  const c = await waitCondition(
    'outside',
    'tenant-a',
    'Accepted',
    (x) => x.reason === 'NotPermitted',
    'outside refused',
  );
  assert.match(c.message, /spec\.ip: 10\.10\.9\.5 is outside the clientCIDRs .*lab-a/);
  await waitFor(() => fileText('10.10.1.5'), 5000, 'inside rendered');
  assert.match(fileText('10.10.1.5')!, /"nbd_allow":\["10\.20\.0\.0\/24:10809"\]/);
  assert.equal(fileText('10.10.9.5'), null);
});

test('a namespaceSelector admits by label, and stops admitting when the label goes', async () => {
  await cluster.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'tenant-s', labels: { team: 's' } },
  });
  await cluster.apply(
    bootNetwork('team-s', {
      clientCIDRs: ['10.10.3.0/24'],
      namespaces: { namespaceSelector: { matchLabels: { team: 's' } } },
      nbdServers: [{ cidr: '10.20.0.0/24' }],
    }),
  );
  await cluster.apply(
    inNs('tenant-s', bootClient('board', { ip: '10.10.3.5', url: 'nbd://10.20.0.9/s' })),
  );
  await waitFor(() => fileText('10.10.3.5'), 8000, 'admitted by label');
  await operator.waitForLog(
    (l) => l.msg === 'Namespace labels watched: a BootNetwork selects namespaces',
  );
  await cluster.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'tenant-s', labels: { team: 'other' } },
  });
  await waitCondition(
    'board',
    'tenant-s',
    'Accepted',
    (x) => x.reason === 'NotPermitted',
    'label removed',
  );
  await waitFor(() => fileText('10.10.3.5') === null, 5000, 'config withdrawn');
});

test('an invalid BootNetwork admits nothing and names every problem in its status', async () => {
  await cluster.apply(
    bootNetwork('broken', {
      clientCIDRs: ['10.10.4.1/24'],
      namespaces: { names: ['tenant-x'] },
      nbdServers: [{ cidr: '10.20.0.0/24', ports: [{ port: 10900, endPort: 10809 }] }],
    }),
  );
  const c = await waitFor(
    async () => {
      const a = (await conditions('BootNetwork', 'broken')).Accepted;
      return a?.status === 'False' ? a : null;
    },
    5000,
    'Invalid',
  );
  assert.equal(c.reason, 'Invalid');
  assert.match(c.message, /spec\.clientCIDRs\[0\]: host bits set/);
  assert.match(c.message, /spec\.nbdServers\[0\]\.ports\[0\]/);
  await cluster.apply(
    inNs('tenant-x', bootClient('board', { ip: '10.10.4.5', url: 'nbd://10.20.0.7/x' })),
  );
  await waitCondition(
    'board',
    'tenant-x',
    'Accepted',
    (x) => x.reason === 'NotPermitted',
    'refused',
  );
});

test("tenant B never takes A's IP: not before, not while A waits on a finalizer, not after A is deleted, re-created or the operator restarts", async () => {
  await cluster.apply(SHARED_POOL);
  const holderA = inNs(
    'tenant-a',
    bootClient('a-board', { ip: '10.10.5.5', url: 'nbd://10.20.0.7/a' }),
  );
  await cluster.apply(holderA);
  await waitFor(() => fileText('10.10.5.5')?.includes('/a"'), 5000, 'A rendered');
  await settle(1100); // creationTimestamp has one-second resolution: B is strictly younger, for now
  await cluster.apply(
    inNs('tenant-b', bootClient('b-board', { ip: '10.10.5.5', url: 'nbd://10.20.0.8/b' })),
  );
  const conflict = await waitCondition(
    'b-board',
    'tenant-b',
    'Conflict',
    (x) => x.status === 'True',
    'B Conflict',
  );
  assert.equal(conflict.reason, 'ClaimedByAnotherNamespace');
  const bIsOut = async (when: string) => {
    const c = await conditions('BootClient', 'b-board', 'tenant-b');
    assert.equal(c.Rendered?.status, 'False', when);
    assert.equal(c.Conflict?.status, 'True', when);
    assert.doesNotMatch(fileText('10.10.5.5') ?? '', /\/b"/, when);
    assert.doesNotMatch(
      await visibleTo('tenant-b', 'b-board'),
      /tenant-a|a-board/,
      `${when}: B sees A`,
    );
  };
  await bIsOut('A holds it');

  // A waits on a finalizer: deleting, not gone.
  await cluster.apply({
    ...holderA,
    metadata: { ...holderA.metadata, finalizers: ['example.com/hold'] },
  });
  await cluster.delete('BootClient', 'a-board', 'tenant-a');
  await waitFor(() => fileText('10.10.5.5') === null, 5000, "A's config withdrawn while deleting");
  await settle(1500);
  await bIsOut('A waits on a finalizer');

  // The finalizer goes: A is gone (a GitOps resync, kubectl replace --force).
  await cluster.apply({ ...holderA, metadata: { ...holderA.metadata, finalizers: [] } });
  await waitFor(
    async () => (await cluster.get('BootClient', 'a-board', 'tenant-a')) === null,
    5000,
    'A gone',
  );
  await settle(1500);
  await bIsOut('A is gone');

  // Restart-safe: the claim is in the API, not in the operator's memory.
  await restartOperator('op-tenancy-2');
  await settle(1500);
  await bIsOut('after an operator restart');

  // A comes back, younger than B: it gets its IP back.
  await cluster.apply(holderA);
  await waitFor(() => fileText('10.10.5.5')?.includes('/a"'), 5000, 'A rendered again');
  await bIsOut('A re-created');
  const metrics = await (await fetch(`http://127.0.0.1:${operator.port}/metrics`)).text();
  assert.match(metrics, /rtftp_operator_claims\{state="held"\} [1-9]/);
});

test("a serial is claimed like an IP: one holder per serial, and tenant B never takes A's, not after A is deleted, re-created or the operator restarts", async () => {
  await cluster.apply(SHARED_POOL);
  const piA = inNs(
    'tenant-a',
    bootClient('a-pi', { ip: '10.10.5.30', url: 'nbd://10.20.0.7/pa', serial: 'd0c0ffee' }),
  );
  await cluster.apply(piA);
  await waitFor(
    () => fileText('10.10.5.30')?.includes('"serial":"d0c0ffee"'),
    5000,
    'A rendered with its serial',
  );
  await settle(1100); // creationTimestamp has one-second resolution: the others are younger
  /** Applies a Pi wanting serial D0C0FFEE (upper case) and waits for its Conflict. */
  const conflictingPi = async (namespace: string, name: string, ip: string) => {
    const url = `nbd://10.20.0.8/${name}`;
    await cluster.apply(inNs(namespace, bootClient(name, { ip, url, serial: 'D0C0FFEE' })));
    return waitCondition(name, namespace, 'Conflict', (x) => x.status === 'True', name);
  };
  // The same serial, another case, in A's own namespace: the older keeps it.
  const twin = await conflictingPi('tenant-a', 'a-pi-twin', '10.10.5.32');
  assert.equal(twin.reason, 'SerialInUse');
  assert.match(twin.message, /serial d0c0ffee is held by BootClient tenant-a\/a-pi/);
  assert.equal(fileText('10.10.5.32'), null);
  await cluster.delete('BootClient', 'a-pi-twin', 'tenant-a');

  const conflict = await conflictingPi('tenant-b', 'b-pi', '10.10.5.31');
  assert.equal(conflict.reason, 'ClaimedByAnotherNamespace');
  const bIsOut = async (when: string) => {
    const c = await conditions('BootClient', 'b-pi', 'tenant-b');
    assert.equal(c.Rendered?.status, 'False', when);
    assert.equal(c.Conflict?.reason, 'ClaimedByAnotherNamespace', when);
    assert.equal(fileText('10.10.5.31'), null, when);
    assert.doesNotMatch(await visibleTo('tenant-b', 'b-pi'), /tenant-a|a-pi/, `${when}: B sees A`);
  };
  await bIsOut('A holds it');
  const claimText = () =>
    cluster.server.store
      .list('/v1/configmaps', cluster.namespace)
      .map((cm) => (cm.data as Record<string, string> | undefined)?.['serial-d0c0ffee.claim'])
      .find((v) => v !== undefined);
  assert.deepEqual(JSON.parse(claimText()!), { namespace: 'tenant-a' });

  await cluster.delete('BootClient', 'a-pi', 'tenant-a');
  await waitFor(() => fileText('10.10.5.30') === null, 5000, "A's config withdrawn");
  await settle(1500);
  await bIsOut('A is gone');
  assert.equal((JSON.parse(claimText()!) as { namespace: string }).namespace, 'tenant-a');

  await restartOperator('op-tenancy-serial');
  await settle(1500);
  await bIsOut('after an operator restart');

  // A comes back, younger than B: it gets its serial back.
  await cluster.apply(piA);
  await waitFor(
    () => fileText('10.10.5.30')?.includes('"serial":"d0c0ffee"'),
    5000,
    'A rendered again',
  );
  await bIsOut('A re-created');
});

test('the cluster admin releases a claim by deleting its key; then the other namespace may take the IP', async () => {
  await cluster.apply(
    inNs('tenant-a', bootClient('a-two', { ip: '10.10.5.6', url: 'nbd://10.20.0.7/a2' })),
  );
  await waitFor(() => fileText('10.10.5.6'), 5000, 'A rendered');
  await cluster.apply(
    inNs('tenant-b', bootClient('b-two', { ip: '10.10.5.6', url: 'nbd://10.20.0.8/b2' })),
  );
  await waitCondition('b-two', 'tenant-b', 'Conflict', (x) => x.status === 'True', 'B Conflict');
  await cluster.delete('BootClient', 'a-two', 'tenant-a');
  await waitFor(() => fileText('10.10.5.6') === null, 5000, 'A withdrawn');
  // The admin finds the claim and deletes the key (docs/operator.md).
  const shard = cluster.server.store
    .list('/v1/configmaps', cluster.namespace)
    .find((cm) => (cm.data as Record<string, string> | undefined)?.['10.10.5.6.claim']);
  assert.ok(shard, 'the claim is in a shard');
  const claim = JSON.parse((shard.data as Record<string, string>)['10.10.5.6.claim']!) as {
    namespace: string;
    vacantSince?: string;
  };
  assert.equal(claim.namespace, 'tenant-a');
  assert.ok(claim.vacantSince, 'vacant since A went');
  const data = { ...(shard.data as Record<string, string>) };
  delete data['10.10.5.6.claim'];
  await cluster.apply({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: shard.metadata.name,
      labels: shard.metadata.labels as Record<string, string>,
    },
    data,
  });
  await waitFor(() => fileText('10.10.5.6')?.includes('/b2"'), 8000, 'B takes the released IP');
});

test('a vacant claim is released after --claim-retention', async () => {
  await restartOperator('op-retention', [...TENANCY_ARGS, '--claim-retention', '3']);
  await cluster.apply(
    inNs('tenant-a', bootClient('a-three', { ip: '10.10.5.7', url: 'nbd://10.20.0.7/a3' })),
  );
  await waitFor(() => fileText('10.10.5.7'), 5000, 'A rendered');
  await cluster.apply(
    inNs('tenant-b', bootClient('b-three', { ip: '10.10.5.7', url: 'nbd://10.20.0.8/b3' })),
  );
  await waitCondition('b-three', 'tenant-b', 'Conflict', (x) => x.status === 'True', 'B Conflict');
  await cluster.delete('BootClient', 'a-three', 'tenant-a');
  const deleted = Date.now();
  await waitFor(() => fileText('10.10.5.7')?.includes('/b3"'), 15_000, 'B after the retention');
  assert.ok(Date.now() - deleted >= 2500, 'not before the retention ran out');
  await operator.waitForLog((l) => l.msg === 'Claim released: vacant for the whole retention');
});

test('a labelled ConfigMap the operator did not write is not served, and is logged and counted', async () => {
  const forged = (name: string, labels: Record<string, string>, ip: string) =>
    cluster.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, labels: { 'rtftp.io/rendered-configs': 'true', ...labels } },
      data: {
        [`${ip}.nbd`]:
          '{"url":"nbd://10.66.6.6/evil","mounts":[{"partition":1,"mountpoint":"/"}],"tftp_root":"/"}\n',
      },
    });
  await forged('boot-overrides', {}, '10.10.7.7');
  await forged(
    'rtftp-configs-99',
    { 'app.kubernetes.io/managed-by': 'rtftp-operator' },
    '10.10.7.8',
  );
  // A shard name that exists cannot be created by anyone else (and RBAC lets only the
  // operator update it: charts/test/chart-tenancy.test.ts).
  const create = await fetch(
    `${cluster.server.url}/api/v1/namespaces/${cluster.namespace}/configmaps`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        metadata: { name: 'rtftp-configs-03', labels: { 'rtftp.io/rendered-configs': 'true' } },
        data: { '10.10.7.9.nbd': '{}' },
      }),
    },
  );
  assert.equal(create.status, 409);
  await sync.waitForLog(
    (l) =>
      l.msg === 'ConfigMap ignored: not written by the operator' &&
      l.configMap === 'boot-overrides',
  );
  await sync.waitForLog(
    (l) =>
      l.msg === 'ConfigMap ignored: not written by the operator' &&
      l.configMap === 'rtftp-configs-99',
  );
  await settle(500);
  assert.equal(fileText('10.10.7.7'), null);
  assert.equal(fileText('10.10.7.8'), null);
  const syncPort = Number(sync.logs.find((l) => l.msg === 'HTTP server listening')?.port);
  const metrics = await (await fetch(`http://127.0.0.1:${syncPort}/metrics`)).text();
  // Once per object version: the look-alike shard name is also rewritten by the operator
  // here (it treats it as a leftover of a larger --shards; RBAC refuses that in a cluster).
  assert.match(metrics, /rtftp_operator_sync_ignored_configmaps_total\{reason="name"\} [2-9]/);
  // The operator left the one without its label alone: it is not one of its shards.
  const evil = await cluster.get('ConfigMap', 'boot-overrides');
  assert.ok((evil?.data as Record<string, string>)['10.10.7.7.nbd']);
});

test('without the BootNetwork CRD (a helm upgrade installs no new CRD) tenants are refused and the operator namespace is still served', async () => {
  const crdDir = mkdtempSync(join(tmpdir(), 'rtftp-crds-'));
  copyFileSync(
    join(REPO_CRD_DIR, 'bootclients.rtftp.io.yaml'),
    join(crdDir, 'bootclients.rtftp.io.yaml'),
  );
  const old = await startTestCluster({ namespace: 'rtftp', crdDir });
  const configs = mkdtempSync(join(tmpdir(), 'rtftp-nocrd-'));
  const sidecar = await startSync({
    kubeconfig: old.kubeconfigPath,
    namespace: old.namespace,
    dir: configs,
  });
  const op = await startOperator({
    kubeconfig: old.kubeconfigPath,
    namespace: old.namespace,
    args: TENANCY_ARGS,
  });
  try {
    await op.waitForLog((l) => l.msg === 'Leadership acquired');
    assert.ok(op.logs.some((l) => String(l.msg).startsWith('BootNetwork CRD not installed')));
    await old.apply(bootClient('admin', { ip: '10.10.8.1', url: 'nbd://10.20.0.7/adm' }));
    const tenant = bootClient('t', { ip: '10.10.8.2', url: 'nbd://10.20.0.7/t' });
    await old.apply({ ...tenant, metadata: { ...tenant.metadata, namespace: 'tenant-a' } });
    await waitFor(
      () => existsSync(join(configs, '10.10.8.1.nbd')),
      8000,
      'the admin namespace served',
    );
    await waitFor(
      async () =>
        (
          (await old.get('BootClient', 't', 'tenant-a')) as {
            status?: { conditions?: Cond[] };
          } | null
        )?.status?.conditions?.some((c) => c.reason === 'NotPermitted'),
      8000,
      'the tenant refused',
    );
    assert.equal(existsSync(join(configs, '10.10.8.2.nbd')), false);
  } finally {
    await Promise.all([op.stop(), sidecar.stop()]);
    await old.stop();
    rmSync(configs, { recursive: true, force: true });
    rmSync(crdDir, { recursive: true, force: true });
  }
});
