/**
 * The Ready condition with the real operator and two real sync sidecars ("nodes") against
 * the in-process API server. Node B reaches the API through a proxy that can cut its view
 * of the ConfigMaps while its report Lease is still renewed (a live node that lags); later
 * it is frozen with SIGSTOP (a dead node: its report goes stale).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApiProxy, type ApiProxy } from './helpers/api-proxy.ts';
import {
  bootClient,
  startOperator,
  startSync,
  startTestCluster,
  waitFor,
  type SpawnedProcess,
  type TestCluster,
} from './helpers/cluster.ts';

/** Reports renewed twice a second; stale after 6 s without one (generous on a loaded host). */
const REPORT_ARGS = ['--report-interval', '0.5', '--report-lease-duration', '6'];
const LEASE_MS = 6000;

let cluster: TestCluster;
let operator: SpawnedProcess & { port: number };
let syncA: SpawnedProcess;
let syncB: SpawnedProcess;
let proxy: ApiProxy;
let dir: string;

type Cond = {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration: number;
};
async function readyOf(name: string): Promise<(Cond & { generation: number }) | undefined> {
  const obj = (await cluster.get('BootClient', name)) as {
    metadata: { generation: number };
    status?: { conditions?: Cond[] };
  } | null;
  const c = obj?.status?.conditions?.find((x) => x.type === 'Ready');
  return c && { ...c, generation: obj!.metadata.generation };
}
/** Waits for Ready with this status and message, for the BootClient's current generation. */
const waitReady = (name: string, status: string, message: string, timeoutMs = 15_000) =>
  waitFor(
    async () => {
      const c = await readyOf(name);
      return c?.status === status && c.message === message && c.observedGeneration === c.generation
        ? c
        : null;
    },
    timeoutMs,
    `${name} Ready=${status} "${message}"`,
  );
const eventsOf = (name: string) =>
  cluster.server.store
    .list('events.k8s.io/v1/events', cluster.namespace)
    .filter((e) => (e.regarding as { name?: string } | undefined)?.name === name)
    .map((e) => `${String(e.reason)}: ${String(e.note)}`);
const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  cluster = await startTestCluster();
  dir = mkdtempSync(join(tmpdir(), 'rtftp-ready-'));
  mkdirSync(join(dir, 'a'));
  mkdirSync(join(dir, 'b'));
  proxy = await startApiProxy(cluster.server.url, /\/configmaps/);
  operator = await startOperator({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    args: ['--watch-timeout', '3'],
  });
  await operator.waitForLog((l) => l.msg === 'Leadership acquired');
  syncA = await startSync({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    dir: join(dir, 'a'),
    nodeName: 'node-a',
    args: REPORT_ARGS,
  });
  syncB = await startSync({
    kubeconfig: proxy.writeKubeconfig(join(dir, 'kubeconfig-b'), cluster.namespace),
    namespace: cluster.namespace,
    dir: join(dir, 'b'),
    nodeName: 'node-b',
    // No watch restarts of its own while its ConfigMaps are held (the watchdog would relist).
    args: [...REPORT_ARGS, '--watch-timeout', '120'],
  });
});

after(async () => {
  syncB?.proc.kill('SIGCONT');
  proxy?.release();
  await Promise.all([operator?.stop(), syncA?.stop(), syncB?.stop()]);
  await proxy?.close();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('Ready=True once both nodes serve the config; False "served by 1/2" while one lags, however long; True when it catches up', async (t) => {
  const started = Date.now();
  const step = (what: string) => t.diagnostic(`${what} after ${Date.now() - started} ms`);
  await cluster.apply(bootClient('board-1', { ip: '10.9.0.1', url: 'nbd://10.0.0.1/one' }));
  const first = await waitReady('board-1', 'True', 'served by 2/2 nodes');
  assert.equal(first.reason, 'Served');
  step('Ready 2/2');
  const lease = await cluster.get('Lease', 'rtftp-sync-node-b');
  assert.equal((lease?.spec as { holderIdentity?: string }).holderIdentity, 'sync-node-b');

  // Node B stops seeing ConfigMaps; its report is still renewed.
  proxy.hold();
  await cluster.apply(bootClient('board-1', { ip: '10.9.0.1', url: 'nbd://10.0.0.1/two' }));
  const lagging = await waitReady('board-1', 'False', 'served by 1/2 nodes');
  assert.equal(lagging.reason, 'Syncing');
  step('Ready 1/2');
  assert.equal(lagging.observedGeneration, 2);
  // A live node that lags keeps the client not ready: it is not dropped like a dead one.
  await settle(LEASE_MS + 2000);
  assert.equal((await readyOf('board-1'))?.message, 'served by 1/2 nodes');
  const renewedAt = (l: Record<string, unknown> | null) =>
    (l?.spec as { renewTime?: string }).renewTime;
  const r1 = renewedAt(await cluster.get('Lease', 'rtftp-sync-node-b'));
  await settle(1500);
  assert.notEqual(renewedAt(await cluster.get('Lease', 'rtftp-sync-node-b')), r1, 'B renews');

  proxy.release();
  step('released');
  await waitReady('board-1', 'True', 'served by 2/2 nodes');
  step('Ready 2/2 again');
  // Events on the transitions only, not for every count in between (Events are sent off
  // the status path: wait for the last one). NotReady carries the count at the flip: the
  // new config is on no node yet, or already on A.
  const events = await waitFor(
    () => {
      const e = eventsOf('board-1').filter((x) => /^(Not)?Ready:/.test(x));
      return e.length >= 3 ? e : null;
    },
    5000,
    'three Ready/NotReady events',
  );
  assert.equal(events.length, 3, events.join('; '));
  assert.equal(events[0], 'Ready: served by 2/2 nodes');
  assert.match(events[1]!, /^NotReady: served by [01]\/2 nodes$/);
  assert.equal(events[2], 'Ready: served by 2/2 nodes');
});

test("a dead node's report goes stale: it no longer counts, and counts again once it reports", async () => {
  await waitReady('board-1', 'True', 'served by 2/2 nodes');
  syncB.proc.kill('SIGSTOP');
  try {
    await cluster.apply(bootClient('board-1', { ip: '10.9.0.1', url: 'nbd://10.0.0.1/three' }));
    // Until its Lease runs out node B still counts, and has not applied the change.
    await waitReady('board-1', 'False', 'served by 1/2 nodes');
    const stale = await waitReady('board-1', 'True', 'served by 1/1 nodes', LEASE_MS + 15_000);
    assert.equal(stale.reason, 'Served');
    await operator.waitForLog(
      (l) =>
        l.msg === 'Dataplane node report went stale; the node no longer counts for Ready' &&
        l.node === 'node-b',
    );
    const metrics = await (await fetch(`http://127.0.0.1:${operator.port}/metrics`)).text();
    assert.match(metrics, /^rtftp_operator_dataplane_reports\{state="stale"\} 1$/m);
    assert.match(metrics, /^rtftp_operator_dataplane_reports\{state="live"\} 1$/m);
    assert.match(metrics, /^rtftp_operator_bootclients\{condition="Ready",status="True"\} 1$/m);
  } finally {
    syncB.proc.kill('SIGCONT');
  }
  await waitReady('board-1', 'True', 'served by 2/2 nodes');
});

test('a BootClient that is not rendered is Ready=False NotRendered, counting the live nodes', async () => {
  await cluster.apply(
    bootClient('odd', {
      ip: '10.9.0.2',
      mounts: [
        { partition: 1, mountpoint: '/' },
        { partition: 2, mountpoint: '/' },
      ],
    }),
  );
  const c = await waitReady('odd', 'False', 'served by 0/2 nodes (not rendered)');
  assert.equal(c.reason, 'NotRendered');
});
