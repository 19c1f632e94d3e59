/**
 * The whole chain for NBD targets a tenant must not reach: the real operator
 * (--all-namespaces, with the cluster's Service and Pod CIDRs), the real sync sidecar and
 * the real dataplane, with no --nbd-allow, so the operator's admission is the only guard.
 * Each target has a tripwire listening where the connection would go, in a network
 * namespace of the test's own (loopback, the metadata address, a Service-CIDR address, a
 * unix socket, a name that resolves to loopback): each BootClient gets NotPermitted and
 * the tripwire sees nothing. The control: the same metadata address, asked for from the
 * operator's own namespace (the admin's), is rendered, and the dataplane does connect.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTripwire, type Tripwire } from '../../dataplane/test/helpers/connect-tripwire.ts';
import { netnsMissingReason } from '../../dataplane/test/helpers/netns.ts';
import { startRtftp, type RunningServer } from '../../dataplane/test/helpers/tftp-servers.ts';
import {
  bootClient,
  startOperator,
  startSync,
  startTestCluster,
  waitFor,
  type SpawnedProcess,
  type TestCluster,
} from './helpers/cluster.ts';

const skip = netnsMissingReason();
if (skip) console.log(`# skipped the tenant NBD target chain: ${skip}`);

const ns = `rt-tenant-${process.pid % 100000}`;
const PORT = 10809;
const CONTROL_PORT = 10810;
let cluster: TestCluster;
let operator: SpawnedProcess | undefined;
let sync: SpawnedProcess | undefined;
let dataplane: RunningServer | undefined;
let trip: Tripwire | undefined;
let dir: string;

const ipNs = (...a: string[]) => {
  const r = spawnSync('ip', ['-n', ns, ...a], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip -n ${ns} ${a.join(' ')}: ${r.stderr}`);
};

before(async () => {
  if (skip) return;
  spawnSync('ip', ['netns', 'del', ns]);
  const made = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(made.stderr);
  ipNs('link', 'set', 'lo', 'up');
  for (const a of ['169.254.169.254/32', '10.96.0.10/32']) ipNs('addr', 'add', a, 'dev', 'lo');
  dir = mkdtempSync(join(tmpdir(), 'rtftp-tenant-targets-'));
  mkdirSync(join(dir, 'root/default'), { recursive: true });
  mkdirSync(join(dir, 'configs'));
  trip = await startTripwire({
    netns: ns,
    tcp: [
      { host: '127.0.0.1', port: PORT },
      { host: '169.254.169.254', port: PORT },
      { host: '10.96.0.10', port: PORT },
      { host: '169.254.169.254', port: CONTROL_PORT },
    ],
    unix: [join(dir, 'containerd.sock')],
  });
  cluster = await startTestCluster({ namespace: 'rtftp' });
  sync = await startSync({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    dir: join(dir, 'configs'),
  });
  operator = await startOperator({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    args: ['--all-namespaces', '--service-cidrs', '10.96.0.0/12', '--pod-cidrs', '10.244.0.0/16'],
  });
  await operator.waitForLog((l) => l.msg === 'Leadership acquired');
  // No --nbd-allow: only the operator stands between a tenant and these addresses.
  dataplane = await startRtftp({
    root: join(dir, 'root'),
    netns: ns,
    args: ['--config-dir', join(dir, 'configs')],
  });
});

after(async () => {
  await Promise.all([dataplane?.stop(), operator?.stop(), sync?.stop(), trip?.stop()]);
  await cluster?.stop();
  if (!skip) spawnSync('ip', ['netns', 'del', ns]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test(
  'loopback, metadata, Service CIDR, an unlisted socket, a name for loopback: NotPermitted, and no connection',
  { skip },
  async () => {
    // A BootNetwork as wide as an admin could write: every address, every port.
    await cluster.apply({
      apiVersion: 'rtftp.io/v1alpha1',
      kind: 'BootNetwork',
      metadata: { name: 'everything' },
      spec: {
        clientCIDRs: ['10.50.0.0/24'],
        namespaces: { names: ['tenant'] },
        nbdServers: [{ cidr: '0.0.0.0/0' }, { cidr: '::/0' }],
      },
    });
    const targets: Record<string, [string, RegExp]> = {
      loopback: [`nbd://127.0.0.1:${PORT}/x`, /127\.0\.0\.1 is loopback/],
      metadata: [`nbd://169.254.169.254:${PORT}/x`, /169\.254\.169\.254 is link-local/],
      service: [`nbd://10.96.0.10:${PORT}/x`, /10\.96\.0\.10 is the cluster's Service CIDR/],
      socket: [
        `nbd+unix:///x?socket=${join(dir, 'containerd.sock')}`,
        /unix socket .* is not listed/,
      ],
      name: [`nbd://localhost:${PORT}/x`, /localhost resolves to 127\.0\.0\.1, which is loopback/],
    };
    const names = Object.keys(targets);
    for (const [i, name] of names.entries()) {
      const bc = bootClient(name, { ip: `10.50.0.${i + 1}`, url: targets[name]![0] });
      await cluster.apply({ ...bc, metadata: { ...bc.metadata, namespace: 'tenant' } });
    }
    for (const name of names) {
      const accepted = await waitFor(
        async () => {
          const obj = (await cluster.get('BootClient', name, 'tenant')) as {
            status?: { conditions?: { type: string; reason: string; message: string }[] };
          } | null;
          return obj?.status?.conditions?.find(
            (c) => c.type === 'Accepted' && c.reason === 'NotPermitted',
          );
        },
        8000,
        `${name}: NotPermitted`,
      );
      assert.match(accepted.message, targets[name]![1], name);
    }
    // The control: the admin asks for the metadata address (another port); it is rendered
    // and the dataplane connects, so the chain would have carried the tenants' configs too.
    await cluster.apply(
      bootClient('admin-control', {
        ip: '10.50.0.99',
        url: `nbd://169.254.169.254:${CONTROL_PORT}/x`,
      }),
    );
    await trip!.waitFor(`169.254.169.254:${CONTROL_PORT}`, 15_000);
    assert.deepEqual(
      readdirSync(join(dir, 'configs')).filter((f) => f.endsWith('.nbd')),
      ['10.50.0.99.nbd'],
      'no tenant config reached the dataplane',
    );
    for (const listener of [
      `127.0.0.1:${PORT}`,
      `169.254.169.254:${PORT}`,
      `10.96.0.10:${PORT}`,
      join(dir, 'containerd.sock'),
    ])
      assert.equal(trip!.count(listener), 0, `${listener} saw a connection`);
  },
);
