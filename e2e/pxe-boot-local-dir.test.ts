/**
 * Real network boots from local directories: a VM on a namespaced LAN gets its address
 * from dnsmasq and its files from the dataplane on UDP 69, out of its own per-client
 * dir before default/. Only this run's initrd can print the marker the test waits for.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  buildMarkerInitrd,
  ipxeScript,
  makeNonce,
  markerText,
  pxelinuxConfig,
} from './harness/boot-payload.ts';
import { PxeLab, pxeSkipReason } from './harness/pxe-lab.ts';
import type { LabHost } from './harness/pxe-lab.ts';

const skip = await pxeSkipReason();
if (skip) console.log(`# skipped PXE boot from local dirs: ${skip}`);

const IPXE_HOST: LabHost = {
  name: 'ipxe-local',
  mac: '52:54:00:e2:e0:10',
  ip: '10.213.0.10',
  biosBootFile: 'boot.ipxe',
};
const PXELINUX_HOST: LabHost = {
  name: 'pxelinux-local',
  mac: '52:54:00:e2:e0:11',
  ip: '10.213.0.11',
  biosBootFile: 'pxelinux.0',
};
const PXELINUX_FILES = [
  '/usr/lib/PXELINUX/pxelinux.0',
  '/usr/lib/syslinux/modules/bios/ldlinux.c32',
];

describe('PXE boot from per-client directories', { skip: skip ?? false }, () => {
  let lab: PxeLab;
  let rescueMarker: string;

  before(async () => {
    lab = await PxeLab.create('local');
    const def = join(lab.root, 'default');
    // default/: the rescue payload, reachable by every client, and pxelinux itself.
    rescueMarker = await lab.installRescuePayload();
    for (const f of PXELINUX_FILES) await copyFile(f, join(def, f.split('/').at(-1)!));
    await mkdir(join(def, 'pxelinux.cfg'));
    await writeFile(join(def, 'pxelinux.cfg', 'default'), pxelinuxConfig());
    await lab.start([IPXE_HOST, PXELINUX_HOST]);
  });

  after(async () => {
    await lab?.close();
  });

  test('SeaBIOS + iPXE boots the kernel and initrd of its own client directory', async () => {
    const nonce = makeNonce();
    const dir = join(lab.root, IPXE_HOST.ip);
    await mkdir(dir);
    await copyFile(lab.kernel, join(dir, 'vmlinuz'));
    await buildMarkerInitrd(join(dir, 'initrd.gz'), IPXE_HOST.name, nonce);
    await writeFile(join(dir, 'boot.ipxe'), ipxeScript());

    const marker = markerText(IPXE_HOST.name, nonce);
    const boot = await lab.bootAndExpect('bios-ipxe, client dir', IPXE_HOST, 'bios-ipxe', marker, [
      rescueMarker,
    ]);
    lab.assertIpxeBootFrom(IPXE_HOST, boot.vm.startedAt, 'client-dir');
  });

  test('pxelinux from default/ reads its config from the client directory first', async () => {
    // Only the config and the initrd are the client's own: pxelinux.0, ldlinux.c32 and
    // the kernel come from default/, whose own config would boot the rescue initrd.
    const nonce = makeNonce();
    const dir = join(lab.root, PXELINUX_HOST.ip);
    await mkdir(join(dir, 'pxelinux.cfg'), { recursive: true });
    await writeFile(
      join(dir, 'pxelinux.cfg', 'default'),
      pxelinuxConfig('vmlinuz', 'client-initrd.gz'),
    );
    await buildMarkerInitrd(join(dir, 'client-initrd.gz'), PXELINUX_HOST.name, nonce);

    const marker = markerText(PXELINUX_HOST.name, nonce);
    const boot = await lab.bootAndExpect(
      'bios-ipxe → pxelinux, default/ + client config',
      PXELINUX_HOST,
      'bios-ipxe',
      marker,
      [rescueMarker],
    );
    const sourceOf = new Map(lab.servedFiles(PXELINUX_HOST, boot.vm.startedAt));
    assert.equal(sourceOf.get('pxelinux.0'), 'default');
    assert.equal(sourceOf.get('ldlinux.c32'), 'default');
    assert.equal(sourceOf.get('pxelinux.cfg/default'), 'client-dir');
    assert.equal(sourceOf.get('vmlinuz'), 'default');
    assert.equal(sourceOf.get('client-initrd.gz'), 'client-dir');
  });
});
