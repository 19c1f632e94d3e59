/**
 * The real operator and sync processes (bin/rtftp-operator.js) against the fake API
 * server: BootClients in, `<ip>.nbd` files out of the sync sidecar's directory, status and
 * Events on the objects, under the faults a real cluster produces.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bootClient,
  startOperator,
  startSync,
  startTestCluster,
  waitFor,
  type SpawnedProcess,
  type TestCluster,
} from './helpers/cluster.ts';

let cluster: TestCluster;
let sync: SpawnedProcess;
let operator: (SpawnedProcess & { port: number }) | undefined;
const others: SpawnedProcess[] = [];
let dir: string;
// Short watches, so the watchdog test does not wait long; the fake server ends them on time.
const OPERATOR_ARGS = ['--watch-timeout', '3'];

type Cond = { type: string; status: string; reason: string; message: string };
async function conditions(name: string): Promise<Record<string, Cond>> {
  const obj = (await cluster.get('BootClient', name)) as {
    status?: { conditions?: Cond[] };
  } | null;
  return Object.fromEntries((obj?.status?.conditions ?? []).map((c) => [c.type, c]));
}
const file = (ip: string) => join(dir, `${ip}.nbd`);
const fileText = (ip: string) => (existsSync(file(ip)) ? readFileSync(file(ip), 'utf8') : null);
const count = (key: string) => cluster.server.writeCounts.get(key) ?? 0;
const STATUS_PUT = 'PUT rtftp.io/v1alpha1/bootclients/status';
const CONFIGMAP_WRITES = () => count('PUT /v1/configmaps') + count('POST /v1/configmaps');
const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function metrics(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

before(async () => {
  cluster = await startTestCluster();
  dir = mkdtempSync(join(tmpdir(), 'rtftp-configs-'));
  sync = await startSync({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    dir,
    args: ['--watch-timeout', '3'],
  });
  operator = await startOperator({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    identity: 'op-a',
    args: OPERATOR_ARGS,
  });
  await operator.waitForLog((l) => l.msg === 'Leadership acquired');
});

after(async () => {
  await Promise.all([operator?.stop(), sync?.stop(), ...others.map((p) => p.stop())]);
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('apply, update and delete a BootClient: its <ip>.nbd appears, changes and goes, through the sync sidecar', async (t) => {
  const started = Date.now();
  const step = (what: string) => t.diagnostic(`${what} after ${Date.now() - started} ms`);
  await cluster.apply(bootClient('board-1', { ip: '10.0.0.5', url: 'nbd://10.0.0.1/one' }));
  await waitFor(() => fileText('10.0.0.5'), 5000, '10.0.0.5.nbd');
  t.diagnostic(`apply -> file latency: ${Date.now() - started} ms`);
  assert.equal(
    fileText('10.0.0.5'),
    '{"url":"nbd://10.0.0.1/one","mounts":[{"partition":1,"mountpoint":"/"}],"tftp_root":"/boot"}\n',
  );
  await waitFor(
    async () => (await conditions('board-1')).Rendered?.status === 'True',
    5000,
    'Rendered=True',
  );

  await cluster.apply(
    bootClient('board-1', { ip: '10.0.0.5', url: 'nbd://10.0.0.1/two', idleTimeout: 60 }),
  );
  step('status');
  await waitFor(() => fileText('10.0.0.5')?.includes('/two'), 5000, 'updated config');
  step('update');
  assert.match(fileText('10.0.0.5')!, /"idle_timeout":60/);

  await cluster.apply(bootClient('board-1', { ip: '10.0.0.6', url: 'nbd://10.0.0.1/two' }));
  await waitFor(
    () => fileText('10.0.0.6') && !fileText('10.0.0.5'),
    5000,
    'config moved to the new IP',
  );

  step('move');
  await cluster.delete('BootClient', 'board-1');
  await waitFor(() => !existsSync(file('10.0.0.6')), 5000, 'config removed');
});

test('two BootClients on one IP: the older keeps it, the newer gets Conflict, then takes over', async () => {
  await cluster.apply(bootClient('holder', { ip: '10.0.1.1', url: 'nbd://10.0.0.1/holder' }));
  await waitFor(() => fileText('10.0.1.1'), 5000, 'holder rendered');
  await settle(1100); // creationTimestamp has one-second resolution
  await cluster.apply(bootClient('intruder', { ip: '10.0.1.1', url: 'nbd://10.0.0.1/intruder' }));
  const c = await waitFor(
    async () => {
      const cs = await conditions('intruder');
      return cs.Conflict?.status === 'True' ? cs : null;
    },
    5000,
    'Conflict=True',
  );
  assert.match(c.Conflict!.message, /holder/);
  assert.equal(c.Rendered?.status, 'False');
  assert.match(fileText('10.0.1.1')!, /\/holder"/, 'never a silent hijack');

  await cluster.delete('BootClient', 'holder');
  await waitFor(() => fileText('10.0.1.1')?.includes('/intruder'), 5000, 'takeover');
  await waitFor(
    async () => (await conditions('intruder')).Conflict?.status === 'False',
    5000,
    'Conflict=False',
  );
  await cluster.delete('BootClient', 'intruder');
});

test('a spec the schema allows but the dataplane would refuse is Accepted=False reason Invalid, with an Event', async () => {
  await cluster.apply(
    bootClient('odd', {
      ip: '10.0.2.1',
      mounts: [
        { partition: 1, mountpoint: '/' },
        { partition: 2, mountpoint: '/' },
      ],
    }),
  );
  const c = await waitFor(
    async () => {
      const cs = await conditions('odd');
      return cs.Accepted ? cs : null;
    },
    5000,
    'Accepted condition',
  );
  assert.equal(c.Accepted!.status, 'False');
  assert.equal(c.Accepted!.reason, 'Invalid');
  assert.match(c.Accepted!.message, /mounted twice/);
  assert.equal(fileText('10.0.2.1'), null);
  // Events are recorded off the status path: wait for it.
  await waitFor(
    () =>
      cluster.server.store
        .list('events.k8s.io/v1/events', cluster.namespace)
        .some((e) => e.reason === 'Invalid' && (e.regarding as { name: string }).name === 'odd'),
    5000,
    'Invalid Event',
  );
  await assert.rejects(
    cluster.apply(
      bootClient('no-root', { ip: '10.0.2.2', mounts: [{ partition: 1, mountpoint: '/boot' }] }),
    ),
    (err: { status?: number }) => err.status === 422,
    'the API server refuses what the schema can check',
  );
  await cluster.delete('BootClient', 'odd');
});

test('status is written once per change, not again on resync, relist or restart', async () => {
  await cluster.apply(bootClient('quiet', { ip: '10.0.3.1' }));
  await waitFor(
    async () => (await conditions('quiet')).Rendered?.status === 'True',
    5000,
    'Rendered',
  );
  await settle(500);
  assert.equal(cluster.server.statusWrites.get(`${cluster.namespace}/quiet`), 1);
  const puts = count(STATUS_PUT);
  const cmWrites = CONFIGMAP_WRITES();
  cluster.server.dropWatches(); // every informer re-watches; the operator reconciles again
  await settle(1500);
  assert.equal(cluster.server.statusWrites.get(`${cluster.namespace}/quiet`), 1);
  assert.equal(count(STATUS_PUT), puts, 'no status PUT at all');
  assert.equal(CONFIGMAP_WRITES(), cmWrites, 'no ConfigMap write');
  await cluster.apply(bootClient('quiet', { ip: '10.0.3.1', url: 'nbd://10.0.0.1/new' }));
  await waitFor(
    () => cluster.server.statusWrites.get(`${cluster.namespace}/quiet`) === 2,
    5000,
    'one write for the new generation',
  );
  await settle(500);
  assert.equal(cluster.server.statusWrites.get(`${cluster.namespace}/quiet`), 2);
});

test('after 410 Gone (history compacted) and dropped watches, the operator re-lists and catches up', async () => {
  cluster.server.store.compact();
  await cluster.apply(bootClient('after-compaction', { ip: '10.0.4.1' }));
  cluster.server.store.compact();
  cluster.server.dropWatches();
  await waitFor(() => fileText('10.0.4.1'), 5000, 'config after 410');
  const m = await metrics(operator!.port);
  assert.match(
    m,
    /rtftp_operator_watch_restarts_total\{resource="bootclients",reason="(expired|closed)"\} [1-9]/,
  );
});

test('a silently stalled watch is restarted by the watchdog', async () => {
  cluster.server.stallWatches();
  await cluster.apply(bootClient('after-stall', { ip: '10.0.4.2' }));
  await waitFor(() => fileText('10.0.4.2'), 10_000, 'config after a stalled watch');
  assert.match(
    await metrics(operator!.port),
    /rtftp_operator_watch_restarts_total\{resource="bootclients",reason="stalled"\} [1-9]/,
  );
});

test('writes failing at random (30%) are retried with backoff until everything converges', async () => {
  cluster.server.faults.failWriteRatio = 0.3;
  cluster.server.faults.failWriteMatch = /bootclients\/status|configmaps|events/;
  try {
    for (let i = 1; i <= 10; i++)
      await cluster.apply(bootClient(`flaky-${i}`, { ip: `10.0.5.${i}` }));
    await waitFor(
      () => Array.from({ length: 10 }, (_, i) => fileText(`10.0.5.${i + 1}`)).every(Boolean),
      15_000,
      'all 10 configs',
    );
    for (let i = 1; i <= 10; i++)
      await waitFor(
        async () => (await conditions(`flaky-${i}`)).Rendered?.status === 'True',
        15_000,
        `flaky-${i} status`,
      );
  } finally {
    cluster.server.faults.failWriteRatio = 0;
  }
});

test('a restarted operator rebuilds its state from the API and rewrites nothing', async () => {
  await operator!.stop();
  const cmWrites = CONFIGMAP_WRITES();
  const statusPuts = count(STATUS_PUT);
  operator = await startOperator({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    identity: 'op-b',
    args: OPERATOR_ARGS,
  });
  await operator.waitForLog((l) => l.msg === 'Leadership acquired', 10_000);
  await settle(1500);
  assert.equal(CONFIGMAP_WRITES(), cmWrites);
  assert.equal(count(STATUS_PUT), statusPuts);
  await cluster.apply(bootClient('after-restart', { ip: '10.0.6.1' }));
  await waitFor(() => fileText('10.0.6.1'), 5000, 'config after restart');
});

test('two replicas: only the leader writes; the standby takes over when the leader dies', async () => {
  const standby = await startOperator({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    identity: 'op-standby',
    args: OPERATOR_ARGS,
  });
  others.push(standby);
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${standby.port}/readyz`)).ok,
    10_000,
    'standby ready',
  );
  assert.match(await metrics(standby.port), /rtftp_operator_leader 0/);
  await cluster.apply(bootClient('two-replicas', { ip: '10.0.7.1' }));
  await waitFor(
    async () => (await conditions('two-replicas')).Rendered?.status === 'True',
    5000,
    'rendered by the leader',
  );
  const instances = () =>
    new Set(
      cluster.server.store
        .list('events.k8s.io/v1/events', cluster.namespace)
        .filter((e) => (e.regarding as { name: string }).name.startsWith('two-replicas'))
        .map((e) => e.reportingInstance),
    );
  await waitFor(() => instances().size > 0, 5000, 'Events recorded');
  assert.deepEqual(instances(), new Set(['op-b']));
  assert.equal(
    standby.logs.some((l) => l.msg === 'Configs rendered'),
    false,
  );

  operator!.proc.kill('SIGKILL'); // no release: the standby must wait out the lease
  await operator!.exited;
  await standby.waitForLog((l) => l.msg === 'Leadership acquired', 10_000);
  await cluster.apply(bootClient('two-replicas-2', { ip: '10.0.7.2' }));
  await waitFor(() => fileText('10.0.7.2'), 5000, 'config from the new leader');
  operator = standby;
  others.pop();
});

test('fewer --shards: the old shards are emptied and every config is still served', async () => {
  const before = readdirSync(dir)
    .filter((n) => n.endsWith('.nbd'))
    .sort();
  await operator!.stop();
  operator = await startOperator({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    identity: 'op-c',
    args: [...OPERATOR_ARGS, '--shards', '4'],
  });
  const dataOf = (i: number) =>
    (cluster.server.store.get(
      '/v1/configmaps',
      cluster.namespace,
      `rtftp-configs-${String(i).padStart(2, '0')}`,
    )?.data ?? {}) as Record<string, string>;
  await waitFor(
    () =>
      Array.from({ length: 12 }, (_, i) => dataOf(i + 4)).every((d) => Object.keys(d).length === 0),
    10_000,
    'shards 04-15 emptied',
  );
  await settle(500);
  assert.deepEqual(
    readdirSync(dir)
      .filter((n) => n.endsWith('.nbd'))
      .sort(),
    before,
  );
  const served = Array.from({ length: 4 }, (_, i) => Object.keys(dataOf(i)).length).reduce(
    (a, b) => a + b,
  );
  assert.equal(served, before.length);
});

test('a leader whose Lease is taken stops writing at once and exits', async () => {
  const lease = (await cluster.get('Lease', 'rtftp-operator')) as {
    metadata: Record<string, unknown>;
    spec: Record<string, unknown>;
  };
  await cluster.apply({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'rtftp-operator' },
    spec: { ...lease.spec, holderIdentity: 'intruder', leaseDurationSeconds: 3600 },
  });
  const code = await Promise.race([operator!.exited, settle(5000).then(() => 'still running')]);
  assert.equal(code, 1);
  assert.ok(operator!.logs.some((l) => l.msg === 'Leadership lost'));
  const cmWrites = CONFIGMAP_WRITES();
  await cluster.apply(bootClient('orphan', { ip: '10.0.8.1' }));
  await settle(500);
  assert.equal(CONFIGMAP_WRITES(), cmWrites, 'nobody writes without the Lease');
});
