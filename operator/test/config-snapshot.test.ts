/**
 * Configs survive the control plane, with real processes: the operator, the sync sidecar
 * (keeping its snapshot in a "hostPath" directory) and the dataplane (bin/rtftp.js with
 * --require-snapshot) reading the client's FAT disk from a real nbdkit with the native
 * reader. A "pod" is a sync + dataplane pair sharing a fresh config dir (the emptyDir);
 * the node directory outlives pods. The API server is stopped and started again under them.
 *
 * What a client must see: its own disk's file as the very first answer, never `default/`'s,
 * and nothing at all (firmware retries) while no complete snapshot is there.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFilesystemImage } from '../../dataplane/test/fixtures/disk-image.ts';
import { freePort, startNbdkit, type RunningNbdkit } from '../../dataplane/test/fixtures/nbdkit.ts';
import { seededBytes } from '../../dataplane/test/helpers/fixtures.ts';
import { decodePacket, encodeError, encodeRrq } from '../../dataplane/test/helpers/tftp-packets.ts';
import {
  rtftpMissingReason,
  startRtftp,
  type RunningServer,
} from '../../dataplane/test/helpers/tftp-servers.ts';
import { UdpEndpoint } from '../../dataplane/test/helpers/udp-endpoint.ts';
import { shardName, shardOf } from '../src/controller/shards.ts';
import { NodeSnapshotStore } from '../src/sync/node-snapshot.ts';
import {
  bootClient,
  startOperator,
  startSync,
  startTestCluster,
  waitFor,
  type SpawnedProcess,
  type TestCluster,
} from './helpers/cluster.ts';

const skip = rtftpMissingReason();
const DISK_FILE = seededBytes(512 * 3 + 7, 41);
const OTHER_FILE = seededBytes(512 * 2 + 9, 42);
const RESCUE = Buffer.from("default/'s rescue file: a client with a config must never get it");
const WITH_CONFIG = '127.0.0.1';
const NO_CONFIG = '127.0.0.2';

let cluster: TestCluster;
let operator: SpawnedProcess | undefined;
let nbd: RunningNbdkit;
let work: string;
let root: string;
let nodeDir: string;
let pods = 0;

interface Pod {
  sync: SpawnedProcess & { port: number };
  dataplane: RunningServer;
  httpPort: number;
  configs: string;
  stop(): Promise<void>;
}
const running = new Set<Pod>();

/** A dataplane pod: a new config dir (emptyDir), the node's snapshot dir, sync + dataplane. */
async function startPod(opts: { apiUp: boolean; snapshotDir?: string }): Promise<Pod> {
  const configs = join(work, `configs-${++pods}`);
  mkdirSync(configs);
  const sync = await startSync({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    dir: configs,
    snapshotDir: opts.snapshotDir ?? nodeDir,
    until: opts.apiUp ? 'synced' : 'listening',
    args: ['--watch-timeout', '5'],
  });
  const httpPort = await freePort();
  let started: RunningServer | undefined;
  try {
    started = await startRtftp({
      root,
      listen: [WITH_CONFIG, NO_CONFIG],
      args: [
        ...['--config-dir', configs, '--require-snapshot'],
        ...['--metrics-port', String(httpPort), '--metrics-listen', '127.0.0.1'],
      ],
    });
    await started.waitForLog((l) => l.msg === 'HTTP server listening');
  } catch (err) {
    await Promise.all([sync.stop(), started?.stop()]);
    throw err;
  }
  const dataplane = started;
  const pod: Pod = {
    sync,
    dataplane,
    httpPort,
    configs,
    async stop() {
      running.delete(pod);
      await Promise.all([dataplane.stop(), sync.stop()]);
    },
  };
  running.add(pod);
  return pod;
}

/**
 * Asks for ten.bin from `client` every 100 ms (firmware retrying) from one port until the
 * first reply, and returns it: repeats of one RRQ are duplicates once a transfer runs, so
 * the first reply is the only answer the client ever gets.
 */
async function firstAnswer(pod: Pod, client: string, withinMs: number) {
  const ep = await UdpEndpoint.open(client);
  try {
    for (const end = Date.now() + withinMs; Date.now() < end;) {
      await ep.send(encodeRrq('ten.bin'), pod.dataplane.port, WITH_CONFIG);
      const d = await ep.receive(100);
      if (d) {
        await ep.send(encodeError(0, 'enough'), d.port, WITH_CONFIG);
        const p = decodePacket(d.msg);
        return p.kind === 'data' ? p.data : p;
      }
    }
    return undefined;
  } finally {
    ep.close();
  }
}

async function snapshotStatus(pod: Pod): Promise<{ state: string; source?: string }> {
  const res = await fetch(`http://127.0.0.1:${pod.httpPort}/status`);
  return ((await res.json()) as { configSnapshot: { state: string; source?: string } })
    .configSnapshot;
}
const readyz = async (port: number) => (await fetch(`http://127.0.0.1:${port}/readyz`)).status;

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'rtftp-config-snapshot-'));
  root = join(work, 'root');
  mkdirSync(join(root, 'default'), { recursive: true });
  writeFileSync(join(root, 'default/ten.bin'), RESCUE);
  nodeDir = join(work, 'node');
  mkdirSync(nodeDir);
  const image = join(work, 'disk.img');
  await buildFilesystemImage(image, {
    fs: 'vfat',
    sizeMiB: 8,
    files: [
      { path: 'ten.bin', content: DISK_FILE },
      { path: 'other', dir: true },
      { path: 'other/ten.bin', content: OTHER_FILE },
    ],
  });
  nbd = await startNbdkit({ partitions: [image], table: 'mbr' });
  cluster = await startTestCluster({ namespace: 'rtftp' });
});

after(async () => {
  await Promise.all([...running].map((p) => p.stop()));
  await operator?.stop();
  await cluster?.stop();
  await nbd?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const board = (tftpRoot: string) =>
  bootClient('board-1', {
    ip: WITH_CONFIG,
    url: nbd.url,
    mounts: [{ partition: 1, mountpoint: '/' }],
    tftpRoot,
    backend: 'native',
  });

test(
  'first start: no reply to anyone until the operator has written every shard, then the disk, never default/',
  { skip },
  async () => {
    // The BootClient exists, the operator has not run yet: nothing rendered.
    await cluster.apply(board('/'));
    const pod = await startPod({ apiUp: true });
    try {
      assert.equal(
        await firstAnswer(pod, NO_CONFIG, 1500),
        undefined,
        'no reply, not even an error',
      );
      assert.equal(await firstAnswer(pod, WITH_CONFIG, 500), undefined);
      assert.equal(await readyz(pod.httpPort), 503);
      assert.equal(await readyz(pod.sync.port), 503);
      assert.equal(existsSync(join(pod.configs, '.rtftp-snapshot.json')), false);

      operator = await startOperator({
        kubeconfig: cluster.kubeconfigPath,
        namespace: cluster.namespace,
        args: ['--watch-timeout', '5'],
      });
      assert.deepEqual(await firstAnswer(pod, WITH_CONFIG, 20_000), DISK_FILE.subarray(0, 512));
      assert.deepEqual(await firstAnswer(pod, NO_CONFIG, 2000), RESCUE);
      const served = await snapshotStatus(pod);
      assert.deepEqual([served.state, served.source], ['serving', 'api']);
      assert.equal(await readyz(pod.sync.port), 200);
      // The node copy is written, with what was served.
      const saved = await new NodeSnapshotStore(nodeDir).load();
      assert.ok(saved.ok);
      assert.ok(saved.snapshot.files[`${WITH_CONFIG}.nbd`]?.includes('"tftp_root":"/"'));
    } finally {
      await pod.stop();
    }
  },
);

test(
  'a pod restarted while the API server is down serves the last known configs at once',
  { skip },
  async () => {
    await operator?.stop();
    operator = undefined;
    await cluster.stopApi();
    const pod = await startPod({ apiUp: false });
    try {
      // The very first answer is the client's own disk: the node's copy was restored
      // before the dataplane admitted a request.
      assert.deepEqual(await firstAnswer(pod, WITH_CONFIG, 10_000), DISK_FILE.subarray(0, 512));
      assert.deepEqual(await firstAnswer(pod, NO_CONFIG, 2000), RESCUE);
      assert.equal((await snapshotStatus(pod)).source, 'node');
      assert.equal(await readyz(pod.httpPort), 200);
      assert.equal(await readyz(pod.sync.port), 200);
      await pod.sync.waitForLog(
        (l) => l.msg === 'Node config snapshot restored; served until the API server is reached',
      );
      // The API server comes back: its listing is served (the same configs), source api.
      await cluster.startApi();
      await waitFor(
        async () => (await snapshotStatus(pod)).source === 'api',
        30_000,
        'the API snapshot served',
      );
      assert.deepEqual(await firstAnswer(pod, WITH_CONFIG, 5000), DISK_FILE.subarray(0, 512));
      const line = await pod.sync.waitForLog(
        (l) => l.msg === 'Config snapshot from the API server served',
      );
      assert.deepEqual([line.replaced, line.sameAsNode], ['node', true]);
    } finally {
      await pod.stop();
    }
  },
);

test(
  "a node copy older than the API's is served only until the API's listing replaces it, on the node too",
  { skip },
  async () => {
    await cluster.startApi();
    operator = await startOperator({
      kubeconfig: cluster.kubeconfigPath,
      namespace: cluster.namespace,
      args: ['--watch-timeout', '5'],
    });
    // Changed while no pod ran on this node: the node's copy is now older than the API.
    const before = await new NodeSnapshotStore(nodeDir).load();
    assert.ok(before.ok);
    await cluster.apply(board('/other'));
    await waitFor(
      async () => {
        const shard = shardName(shardOf(`${WITH_CONFIG}.nbd`, 16));
        const cm = await cluster.get('ConfigMap', shard);
        return JSON.stringify(cm?.data ?? {}).includes('/other');
      },
      20_000,
      'the new config rendered',
    );
    const pod = await startPod({ apiUp: true });
    try {
      await waitFor(
        async () => (await snapshotStatus(pod)).source === 'api',
        20_000,
        'the API snapshot served',
      );
      assert.deepEqual(await firstAnswer(pod, WITH_CONFIG, 5000), OTHER_FILE.subarray(0, 512));
      const restored = pod.sync.logs.findIndex((l) =>
        String(l.msg).startsWith('Node config snapshot restored'),
      );
      const api = pod.sync.logs.findIndex(
        (l) => l.msg === 'Config snapshot from the API server served',
      );
      assert.ok(restored >= 0 && api > restored, 'the node copy first, then the API');
      assert.deepEqual(
        [pod.sync.logs[api]!.replaced, pod.sync.logs[api]!.sameAsNode],
        ['node', false],
      );
      const after = await new NodeSnapshotStore(nodeDir).load();
      assert.ok(after.ok);
      assert.notDeepEqual(after.snapshot.resourceVersions, before.snapshot.resourceVersions);
      assert.ok(after.snapshot.files[`${WITH_CONFIG}.nbd`]?.includes('"tftp_root":"/other"'));
    } finally {
      await pod.stop();
    }
  },
);

test(
  'a first start on a node with neither the API server nor a snapshot: silent, not ready, and the sidecar says why',
  { skip },
  async () => {
    await operator?.stop();
    operator = undefined;
    await cluster.stopApi();
    const emptyNode = join(work, 'new-node');
    mkdirSync(emptyNode);
    const pod = await startPod({ apiUp: false, snapshotDir: emptyNode });
    try {
      const why = await pod.sync.waitForLog(
        (l) =>
          l.msg ===
          'No complete config snapshot: the dataplane answers no request and stays not ready until one is',
      );
      assert.equal(why.nodeSnapshot, 'none on this node yet');
      assert.match(String(why.api), /^not listed yet \(.*(ECONNREFUSED|connect)/i);
      assert.equal(await firstAnswer(pod, WITH_CONFIG, 1500), undefined);
      assert.equal(await firstAnswer(pod, NO_CONFIG, 500), undefined);
      assert.equal(await readyz(pod.httpPort), 503);
      assert.equal(await readyz(pod.sync.port), 503);
      assert.equal((await snapshotStatus(pod)).state, 'waiting');
      // The API server returns: the shards are there, the disk is served.
      await cluster.startApi();
      assert.deepEqual(await firstAnswer(pod, WITH_CONFIG, 60_000), OTHER_FILE.subarray(0, 512));
      const saved = await new NodeSnapshotStore(emptyNode).load();
      assert.ok(saved.ok);
      assert.ok(saved.snapshot.files[`${WITH_CONFIG}.nbd`]?.includes('"tftp_root":"/other"'));
    } finally {
      await pod.stop();
    }
  },
);
