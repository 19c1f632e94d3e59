/**
 * Real firmware against the containerised dataplane: SeaBIOS + iPXE in qemu, on the e2e
 * harness's boot network (e2e/harness/pxe-lab.ts), gets its address from dnsmasq and its
 * script, kernel and initrd over TFTP from the native dataplane image, run by podman in the
 * lab's namespace exactly as the chart's DaemonSet renders it (listening on the boot network
 * address, as `dataplane.listen` sets it).
 */
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SERVER_IP } from '../harness/boot-network.ts';
import { RunningDataplane } from '../harness/dataplane-process.ts';
import { PxeLab, pxeSkipReason } from '../harness/pxe-lab.ts';
import type { LabHost } from '../harness/pxe-lab.ts';
import {
  podmanMissingReason,
  renderForBuiltImages,
  renderedContainer,
  runContainer,
  writeCompleteSnapshot,
  type RunningContainer,
} from './pod.ts';

const IMAGE = 'localhost/rtftp-dataplane:dev-native';
const skip = podmanMissingReason([IMAGE]) ?? (await pxeSkipReason());
if (skip) console.log(`# skipped the PXE boot against the dataplane image: ${skip}`);

const HOST: LabHost = {
  name: 'ipxe-image',
  mac: '52:54:00:e2:e0:50',
  ip: '10.213.0.50',
  biosBootFile: 'boot.ipxe',
};

describe('PXE boot from the dataplane image', { skip: skip ?? false }, () => {
  let lab: PxeLab;
  let container: RunningContainer | undefined;
  let rescueMarker: string;

  before(async () => {
    lab = await PxeLab.create('image');
    rescueMarker = await lab.installRescuePayload();
    const configs = join(lab.workDir, 'configs');
    const tmp = join(lab.workDir, 'tmp');
    await mkdir(configs);
    writeCompleteSnapshot(configs);
    await mkdir(tmp);
    await chmod(tmp, 0o1777);
    const rendered = renderedContainer(
      renderForBuiltImages({ dataplane: { listen: [SERVER_IP], image: { flavor: 'native' } } }),
      'DaemonSet',
      'tftp',
    );
    await lab.startWith([HOST], async (net) => {
      container = runContainer(rendered, {
        name: `rtftp-pxe-${process.pid}`,
        netns: net.namespace,
        volumes: { root: lab.root, configs, tmp },
      });
      const dataplane = new RunningDataplane(container.process, net);
      await dataplane.waitFor((e) => e.msg === 'Server listening', 60_000);
      await dataplane.waitFor((e) => e.msg === 'HTTP server listening', 30_000);
      return dataplane;
    });
  });

  after(async () => {
    container?.remove();
    await lab?.close();
  });

  test('SeaBIOS + iPXE boots the kernel and initrd of default/ from the container', async () => {
    const boot = await lab.bootAndExpect(
      'bios-ipxe, dataplane image',
      HOST,
      'bios-ipxe',
      rescueMarker,
      [],
    );
    lab.assertIpxeBootFrom(HOST, boot.vm.startedAt, 'default');
  });
});
