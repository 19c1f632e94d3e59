/**
 * The operator image in both its roles, run with podman as the chart renders them, against
 * the in-process API server (operator/test/fake-apiserver): the controller (Deployment)
 * renders a BootClient into ConfigMaps; the sync sidecar (DaemonSet `config-sync`, the
 * operator image's `sync` mode) writes the `<ip>.nbd` into the configs volume it shares with
 * the dataplane container, and the dataplane container serves that client's disk.
 *
 * The API server listens on this process's loopback; the containers live in a network
 * namespace of the test's own. A relay inside that namespace listens on 127.0.0.1:6443 and
 * forwards to a unix socket this process serves, which forwards to the API server. The
 * containers find it through a kubeconfig mounted where the chart mounts the service-account
 * token (the fake server speaks plain HTTP, so in-cluster TLS config cannot be used).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NAMESPACE } from '../../charts/test/helm.ts';
import { bootClient, startTestCluster, waitFor } from '../../operator/test/helpers/cluster.ts';
import type { TestCluster } from '../../operator/test/helpers/cluster.ts';
import { createStarTopology, type StarTopology } from '../../dataplane/test/helpers/netns.ts';
import { failed, runClient } from '../../dataplane/test/helpers/real-clients.ts';
import { BootDisk, DISK_MOUNTS } from '../harness/boot-disk.ts';
import { parseLogLine } from '../harness/dataplane-process.ts';
import { startProcess, type TrackedProcess } from '../harness/processes.ts';
import {
  podmanMissingReason,
  renderForBuiltImages,
  renderedContainer,
  runContainer,
  type RunningContainer,
} from './pod.ts';

const IMAGES = ['localhost/rtftp-operator:dev', 'localhost/rtftp-dataplane:dev-native'];
const skip = podmanMissingReason(IMAGES);
if (skip) console.log(`# skipped the operator image tests: ${skip}`);

const TOKEN_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const RELAY_PORT = 6443;
/** Forwards 127.0.0.1:PORT inside the namespace to a unix socket outside it. */
const RELAY = `
const net = require('node:net');
const [socket, port] = process.argv.slice(1);
net.createServer((c) => {
  const u = net.connect(socket);
  c.pipe(u).pipe(c);
  c.on('error', () => u.destroy());
  u.on('error', () => c.destroy());
}).listen(Number(port), '127.0.0.1', () => console.log('relay listening'));
`;

describe(
  'the operator image: controller and sync sidecar feed the dataplane container',
  { skip },
  () => {
    let dir = '';
    let cluster: TestCluster | undefined;
    let net: StarTopology | undefined;
    let bridge: Server | undefined;
    let relay: TrackedProcess | undefined;
    let disk: BootDisk | undefined;
    const containers: RunningContainer[] = [];
    const kernel = randomBytes(200_000);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'rtftp-img-operator-'));
      chmodSync(dir, 0o755);
      for (const d of [
        'kube',
        'root/default',
        'configs',
        'tmp',
        'operator-tmp',
        'node-snapshot',
        'disk',
      ])
        mkdirSync(join(dir, d), { recursive: true });
      for (const d of ['configs', 'tmp', 'operator-tmp']) chmodSync(join(dir, d), 0o1777);
      // The hostPath the chart's init container chowns to the sidecar's uid.
      chownSync(join(dir, 'node-snapshot'), 10001, 10001);
      disk = await BootDisk.create({
        dir: join(dir, 'disk'),
        name: 'board',
        table: 'mbr',
        bootFiles: [{ path: 'vmlinuz', content: kernel }],
      });
      const socket = realpathSync(join(dir, 'disk', 'board.sock'));
      chmodSync(dirname(socket), 0o755);
      chmodSync(socket, 0o666);

      cluster = await startTestCluster({ namespace: NAMESPACE });
      const apiPort = Number(new URL(cluster.server.url).port);
      const apiSocket = join(dir, 'api.sock');
      bridge = createServer((c) => {
        const u = connect(apiPort, '127.0.0.1');
        c.pipe(u).pipe(c);
        c.on('error', () => u.destroy());
        u.on('error', () => c.destroy());
      });
      await new Promise<void>((r) => bridge!.listen(apiSocket, r));
      net = createStarTopology('opimg', 1);
      relay = startProcess('api-relay', 'ip', [
        'netns',
        'exec',
        net.server,
        process.execPath,
        '-e',
        RELAY,
        apiSocket,
        String(RELAY_PORT),
      ]);
      await relay.waitForLine((l) => l.text === 'relay listening', 10_000);
      writeFileSync(
        join(dir, 'kube', 'kubeconfig'),
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [
            {
              name: 'fake',
              cluster: {
                server: `http://127.0.0.1:${RELAY_PORT}`,
                'insecure-skip-tls-verify': true,
              },
            },
          ],
          users: [{ name: 'fake', user: { token: 'fake-token' } }],
          contexts: [
            { name: 'fake', context: { cluster: 'fake', user: 'fake', namespace: NAMESPACE } },
          ],
          'current-context': 'fake',
        }),
        { mode: 0o644 },
      );
      const kube = { KUBECONFIG: `${TOKEN_DIR}/kubeconfig` };
      const fieldRefs = {
        'metadata.namespace': NAMESPACE,
        'metadata.name': 'boot-rtftp-operator-0',
        'spec.nodeName': 'boot-01',
      };
      // The disk's socket is an NBD target the admin allows, as a user would (--nbd-allow).
      const objects = renderForBuiltImages({
        dataplane: {
          image: { flavor: 'native' },
          nbdAllow: ['0.0.0.0/0', '::/0', join(dir, 'disk', 'board.sock')],
        },
      });
      const start = (
        kind: 'Deployment' | 'DaemonSet',
        name: string,
        volumes: Record<string, string>,
        extra = {},
      ) => {
        const c = runContainer(renderedContainer(objects, kind, name), {
          name: `rtftp-${name}-${process.pid}`,
          netns: net!.server,
          volumes,
          fieldRefs,
          ...extra,
        });
        containers.push(c);
        return c;
      };
      start(
        'Deployment',
        'operator',
        { 'kube-api-access': join(dir, 'kube'), tmp: join(dir, 'operator-tmp') },
        {
          extraEnv: kube,
        },
      );
      start(
        'DaemonSet',
        'config-sync',
        {
          'kube-api-access': join(dir, 'kube'),
          configs: join(dir, 'configs'),
          'node-snapshot': join(dir, 'node-snapshot'),
        },
        {
          extraEnv: kube,
        },
      );
      const tftp = start(
        'DaemonSet',
        'tftp',
        { root: join(dir, 'root'), configs: join(dir, 'configs'), tmp: join(dir, 'tmp') },
        {
          extraMounts: [
            `${join(dir, 'disk')}:${join(dir, 'disk')}:ro`,
            `${dirname(socket)}:${dirname(socket)}`,
          ],
        },
      );
      await tftp.process.waitForLine((l) => parseLogLine(l)?.msg === 'Server listening', 60_000);
      for (const c of containers.slice(0, 2))
        await c.process.waitForLine(
          (l) => parseLogLine(l)?.msg === 'HTTP server listening',
          60_000,
        );
    });

    after(async () => {
      for (const c of containers) c.remove();
      await Promise.all(containers.map((c) => c.process.stop(2_000)));
      await relay?.stop();
      bridge?.close();
      net?.destroy();
      await cluster?.stop();
      await disk?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('a BootClient applied → the controller renders it → sync writes <ip>.nbd → the dataplane serves its disk', async () => {
      const seat = net!.clients[0]!;
      await cluster!.apply(
        bootClient('board', {
          ip: seat.address,
          url: disk!.url,
          mounts: DISK_MOUNTS,
          tftpRoot: '/boot',
        }),
      );
      const config = join(dir, 'configs', `${seat.address}.nbd`);
      await waitFor(() => existsSync(config), 60_000, `${config}, written by the sync container`);
      assert.equal(JSON.parse(readFileSync(config, 'utf8')).url, disk!.url);
      const tftp = containers[2]!;
      await tftp.process.waitForLine((l) => parseLogLine(l)?.msg === 'Disk connected', 60_000);
      const out = join(dir, 'got-vmlinuz');
      const run = await runClient('tftp-hpa', {
        host: seat.serverAddress,
        port: 69,
        file: 'vmlinuz',
        out,
        netns: seat.netns,
        timeoutMs: 60_000,
      });
      assert.ok(!failed(run), run.output);
      assert.ok(readFileSync(out).equals(kernel));
    });
  },
);
