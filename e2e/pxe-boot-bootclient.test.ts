/**
 * The mission end to end: a BootClient is applied to the (in-process) API server; the
 * real operator renders it, the real sync process writes its `<ip>.nbd` into the
 * dataplane's config dir, the dataplane connects the disk on its own, and a VM's PXE
 * firmware boots the kernel and initrd out of that disk. Then two machines with two
 * BootClients and two disks boot at the same time, each its own payload.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BootDisk, DISK_MOUNTS } from './harness/boot-disk.ts';
import { bootFiles, buildMarkerInitrd, makeNonce, markerText } from './harness/boot-payload.ts';
import { REPO } from './harness/dataplane-process.ts';
import { PxeLab, pxeSkipReason } from './harness/pxe-lab.ts';
import type { LabHost } from './harness/pxe-lab.ts';
import type * as ClusterHelperModule from '../operator/test/helpers/cluster.ts';

const CLUSTER_HELPER = `${REPO}operator/test/helpers/cluster.ts`;
// Type only (erased at run time): the module itself is loaded once it is known to exist.
type ClusterHelper = typeof ClusterHelperModule;

const skip =
  (await pxeSkipReason()) ??
  (existsSync(CLUSTER_HELPER) && existsSync(`${REPO}operator/src/main.ts`)
    ? null
    : 'the operator and its test cluster helper (operator/test/helpers/cluster.ts) are not in the tree yet');
if (skip) console.log(`# skipped PXE boot declared by BootClients: ${skip}`);

const HOSTS: LabHost[] = [
  { name: 'board-a', mac: '52:54:00:e2:e0:30', ip: '10.213.0.30', biosBootFile: 'boot.ipxe' },
  { name: 'board-b', mac: '52:54:00:e2:e0:31', ip: '10.213.0.31', biosBootFile: 'boot.ipxe' },
];

describe('PXE boot of machines declared by BootClients', { skip: skip ?? false }, () => {
  let helper: ClusterHelper;
  let lab: PxeLab;
  let cluster: Awaited<ReturnType<ClusterHelper['startTestCluster']>> | undefined;
  let operator: Awaited<ReturnType<ClusterHelper['startOperator']>> | undefined;
  let sync: Awaited<ReturnType<ClusterHelper['startSync']>> | undefined;
  const disks: BootDisk[] = [];
  const nonces = HOSTS.map(() => makeNonce());
  let rescueMarker: string;
  const markerOf = (i: number) => markerText(HOSTS[i]!.name, nonces[i]!);
  let configDir: string;

  /** Applies the BootClient of HOSTS[i]: its disk, its address, its boot partition. */
  async function applyBootClient(i: number) {
    await cluster!.apply(
      helper.bootClient(HOSTS[i]!.name, {
        ip: HOSTS[i]!.ip,
        url: disks[i]!.url,
        mounts: DISK_MOUNTS,
        tftpRoot: '/boot',
      }),
    );
  }

  before(async () => {
    helper = (await import(CLUSTER_HELPER)) as ClusterHelper;
    lab = await PxeLab.create('bootclient');
    rescueMarker = await lab.installRescuePayload();
    const dir = join(lab.workDir, 'disks');
    await mkdir(dir);
    for (const [i, host] of HOSTS.entries()) {
      const initrd = join(dir, `${host.name}-initrd.gz`);
      await buildMarkerInitrd(initrd, host.name, nonces[i]!);
      disks.push(
        await BootDisk.create({
          dir,
          name: host.name,
          table: i === 0 ? 'gpt' : 'mbr',
          bootFiles: bootFiles(lab.kernel, initrd),
        }),
      );
    }
    // The shared volume: what the sync process writes and the dataplane watches.
    configDir = join(lab.workDir, 'configs');
    await mkdir(configDir);
    cluster = await helper.startTestCluster();
    operator = await helper.startOperator({
      kubeconfig: cluster.kubeconfigPath,
      namespace: cluster.namespace,
    });
    sync = await helper.startSync({
      kubeconfig: cluster.kubeconfigPath,
      namespace: cluster.namespace,
      dir: configDir,
    });
    await lab.start(HOSTS, ['--config-dir', configDir]);
  });

  after(async () => {
    await lab?.close();
    await sync?.stop();
    await operator?.stop();
    await cluster?.stop();
    await Promise.all(disks.map((d) => d.close()));
  });

  test('BootClient applied → operator → sync → dataplane → the VM boots from its disk', async () => {
    const applied = Date.now();
    await applyBootClient(0);
    // Powered on as soon as the config exists, the way a user applies and boots.
    await helper.waitFor(
      () => existsSync(join(configDir, `${HOSTS[0]!.ip}.nbd`)),
      30_000,
      'the rendered config in the config dir',
    );
    console.log(`[pxe] BootClient → config file in ${Date.now() - applied} ms`);
    const boot = await lab.bootAndExpect(
      'bios-ipxe, BootClient board-a',
      HOSTS[0]!,
      'bios-ipxe',
      markerOf(0),
      [rescueMarker],
    );
    lab.assertDiskConnectedBeforeFirstRequest(HOSTS[0]!, boot.vm.startedAt);
    lab.assertIpxeBootFrom(HOSTS[0]!, boot.vm.startedAt, 'nbd');
  });

  test('two BootClients, two disks: two VMs booting at once each get their own kernel', async () => {
    await applyBootClient(1);
    await helper.waitFor(
      () => existsSync(join(configDir, `${HOSTS[1]!.ip}.nbd`)),
      30_000,
      'the second rendered config',
    );
    const results = await Promise.all(
      HOSTS.map((host, i) =>
        lab.bootAndExpect(`bios-ipxe, concurrent ${host.name}`, host, 'bios-ipxe', markerOf(i), [
          rescueMarker,
          ...HOSTS.map((_, j) => markerOf(j)).filter((_, j) => j !== i),
        ]),
      ),
    );
    for (const [i, r] of results.entries()) {
      lab.assertIpxeBootFrom(HOSTS[i]!, r.vm.startedAt, 'nbd');
    }
  });
});
