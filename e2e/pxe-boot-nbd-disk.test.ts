/**
 * Real network boots out of each machine's own disk: the boot files sit on the FAT32
 * /boot partition of an MBR or GPT disk served by nbdkit; a `<ip>.nbd` config in the
 * dataplane's root names it. Firmware: SeaBIOS + iPXE, and OVMF's own PXE client
 * chain-loading GRUB. Then the client upgrades its kernel inside the disk, and its disk
 * goes away and comes back — each time the serial console must show the right marker.
 * One dataplane (and its appliance) serves the whole file.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BootDisk } from './harness/boot-disk.ts';
import {
  bootFiles,
  buildMarkerInitrd,
  grubConfig,
  makeNonce,
  markerText,
} from './harness/boot-payload.ts';
import { PxeLab, pxeSkipReason } from './harness/pxe-lab.ts';
import type { LabHost } from './harness/pxe-lab.ts';

const GRUB_EFI = '/usr/lib/grub/x86_64-efi/monolithic/grubnetx64.efi';

const skip = await pxeSkipReason();
if (skip) console.log(`# skipped PXE boot from NBD disks: ${skip}`);

const MBR_HOST: LabHost = {
  name: 'disk-mbr',
  mac: '52:54:00:e2:e0:20',
  ip: '10.213.0.20',
  biosBootFile: 'boot.ipxe',
};
const GPT_HOST: LabHost = {
  name: 'disk-gpt',
  mac: '52:54:00:e2:e0:21',
  ip: '10.213.0.21',
  biosBootFile: 'boot.ipxe',
  efiBootFile: 'grubnetx64.efi',
};

/** The value of one Prometheus sample whose labels include `labels` (0 when absent). */
function metricValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const found = Object.fromEntries(
      [...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) {
      return Number(line.split(' ').at(-1));
    }
  }
  return 0;
}

describe('PXE boot from the client’s own NBD disk', { skip: skip ?? false }, () => {
  let lab: PxeLab;
  let mbr: BootDisk;
  let gpt: BootDisk;
  let rescueMarker: string;
  const nonces = { mbr: makeNonce(), gpt: makeNonce() };
  let dataplanePid = 0;

  before(async () => {
    lab = await PxeLab.create('nbd');
    const def = join(lab.root, 'default');
    rescueMarker = await lab.installRescuePayload();
    await copyFile(GRUB_EFI, join(def, 'grubnetx64.efi'));
    await mkdir(join(def, 'grub'));
    await writeFile(join(def, 'grub', 'grub.cfg'), grubConfig());

    const disks = join(lab.workDir, 'disks');
    await mkdir(disks);
    const initrd = (n: string) => join(disks, `${n}-initrd.gz`);
    await buildMarkerInitrd(initrd('mbr'), MBR_HOST.name, nonces.mbr);
    await buildMarkerInitrd(initrd('gpt'), GPT_HOST.name, nonces.gpt);
    [mbr, gpt] = await Promise.all([
      BootDisk.create({
        dir: disks,
        name: 'mbr',
        table: 'mbr',
        bootFiles: bootFiles(lab.kernel, initrd('mbr')),
      }),
      BootDisk.create({
        dir: disks,
        name: 'gpt',
        table: 'gpt',
        bootFiles: bootFiles(lab.kernel, initrd('gpt')),
      }),
    ]);
    await lab.start([MBR_HOST, GPT_HOST]);
    dataplanePid = lab.dataplane!.process.pid;
  });

  after(async () => {
    await lab?.close();
    await Promise.all([mbr?.close(), gpt?.close()]);
  });

  test('MBR disk, default backend: connected proactively, SeaBIOS + iPXE boots from it', async () => {
    // The config appears and the machine powers on at once, as after `kubectl apply`.
    await mbr.writeConfig(lab.root, MBR_HOST.ip);
    const boot = await lab.bootAndExpect(
      'bios-ipxe, MBR disk',
      MBR_HOST,
      'bios-ipxe',
      markerText(MBR_HOST.name, nonces.mbr),
      [rescueMarker],
    );
    lab.assertDiskConnectedBeforeFirstRequest(MBR_HOST, boot.vm.startedAt);
    lab.assertIpxeBootFrom(MBR_HOST, boot.vm.startedAt, 'nbd');
  });

  test('GPT disk through libguestfs: connected proactively, SeaBIOS + iPXE boots from it', async () => {
    // An appliance launch under TCG takes 13 s on an idle host and over 90 s on a loaded
    // one, longer than iPXE (~18 s) or EDK2 keep retrying their first request: the machine
    // is powered on once the disk is connected, as an operator waits for Ready.
    const configured = Date.now();
    await gpt.writeConfig(lab.root, GPT_HOST.ip, 'guestfs');
    const connected = await lab.dataplane!.waitFor(
      (e) => e.msg === 'Disk connected' && e.client === GPT_HOST.ip,
      300_000,
    );
    console.log(
      `[pxe] ${GPT_HOST.ip}: guestfs appliance connected ${((connected.time - configured) / 1000).toFixed(1)} s after its config appeared`,
    );
    const boot = await lab.bootAndExpect(
      'bios-ipxe, GPT disk (guestfs)',
      GPT_HOST,
      'bios-ipxe',
      markerText(GPT_HOST.name, nonces.gpt),
      [rescueMarker],
    );
    lab.assertDiskConnectedBeforeFirstRequest(GPT_HOST, boot.vm.startedAt);
    assert.equal(connected.backend, 'guestfs');
    lab.assertIpxeBootFrom(GPT_HOST, boot.vm.startedAt, 'nbd');
  });

  test('OVMF’s PXE (windowsize 4) loads GRUB from default/, GRUB the kernel from the disk', async () => {
    const boot = await lab.bootAndExpect(
      'ovmf → grubnetx64.efi, GPT disk',
      GPT_HOST,
      'ovmf',
      markerText(GPT_HOST.name, nonces.gpt),
      [rescueMarker],
      240_000,
    );
    const transfers = lab.dataplane!.transfers(GPT_HOST.ip, boot.vm.startedAt);
    const grub = transfers.find(
      (t) => t.file.endsWith('grubnetx64.efi') && t.outcome === 'completed',
    );
    assert.equal(grub?.source, 'default');
    assert.equal(grub?.windowsize, 4, 'EDK2 downloads with windowsize 4');
    const served = new Map(lab.servedFiles(GPT_HOST, boot.vm.startedAt));
    // GRUB asks with absolute paths; they resolve inside the disk's tftp_root.
    assert.equal(served.get('/grub/grub.cfg'), 'nbd');
    assert.equal(served.get('/vmlinuz'), 'nbd');
    assert.equal(served.get('/initrd.gz'), 'nbd');
  });

  /**
   * The client rewrites its initrd inside its own disk; the next boot must get the new one.
   * Returns the new nonce: later scenarios expect the disk's current marker.
   */
  async function upgradeAndBoot(
    disk: BootDisk,
    host: typeof MBR_HOST,
    previous: string,
    label: string,
  ): Promise<string> {
    const upgraded = makeNonce();
    const fresh = join(lab.workDir, `upgraded-${host.name}-initrd.gz`);
    await buildMarkerInitrd(fresh, host.name, upgraded);
    const content = await readFile(fresh);
    await disk.replaceBootFile('initrd.gz', content);
    const boot = await lab.bootAndExpect(
      label,
      host,
      'bios-ipxe',
      markerText(host.name, upgraded),
      [markerText(host.name, previous), rescueMarker],
    );
    assert.equal(lab.dataplane!.process.pid, dataplanePid);
    assert.equal(lab.dataplane!.process.hasExited, false);
    const initrd = lab
      .dataplane!.transfers(host.ip, boot.vm.startedAt)
      .find((t) => t.file === 'initrd.gz' && t.outcome === 'completed');
    assert.equal(initrd?.source, 'nbd');
    assert.equal(initrd?.bytes, content.length);
    return upgraded;
  }

  test('a kernel upgraded inside the disk is booted next time, without restarting the dataplane', async () => {
    nonces.gpt = await upgradeAndBoot(
      gpt,
      GPT_HOST,
      nonces.gpt,
      'bios-ipxe, GPT disk (guestfs) after upgrade',
    );
  });

  test('the same upgrade is seen through the native reader, with no remount and no VM', async () => {
    nonces.mbr = await upgradeAndBoot(
      mbr,
      MBR_HOST,
      nonces.mbr,
      'bios-ipxe, MBR disk (native) after upgrade',
    );
    const connected = lab
      .dataplane!.entries()
      .findLast((e) => e.msg === 'Disk connected' && e.client === MBR_HOST.ip);
    assert.equal(connected?.backend, 'native');
  });

  test('with its disk unreachable the client boots default/’s rescue payload, then its disk again', async () => {
    await mbr.stopServer();
    const rescue = await lab.bootAndExpect(
      'bios-ipxe, MBR disk stopped → default/',
      MBR_HOST,
      'bios-ipxe',
      rescueMarker,
      [markerText(MBR_HOST.name, nonces.mbr)],
    );
    lab.assertIpxeBootFrom(MBR_HOST, rescue.vm.startedAt, 'default');

    const restarted = Date.now();
    await mbr.startServer();
    // The dataplane retries a failed disk with backoff, and a request during the backoff
    // goes on to default/ without a new attempt: the next boot gets the disk once the
    // retry has reconnected it, with no config change and no restart.
    const reconnected = await lab.dataplane!.waitFor(
      (e) => e.msg === 'Disk connected' && e.client === MBR_HOST.ip && e.time >= restarted,
      120_000,
    );
    console.log(
      `[pxe] ${MBR_HOST.ip}: disk reconnected ${((reconnected.time - restarted) / 1000).toFixed(1)} s after nbdkit came back`,
    );
    const back = await lab.bootAndExpect(
      'bios-ipxe, MBR disk back',
      MBR_HOST,
      'bios-ipxe',
      markerText(MBR_HOST.name, nonces.mbr),
      [rescueMarker],
    );
    lab.assertIpxeBootFrom(MBR_HOST, back.vm.startedAt, 'nbd');
    assert.equal(lab.dataplane!.process.pid, dataplanePid);
  });

  test('its /metrics count the same transfers its log shows, by source', async () => {
    const text = await lab.dataplane!.metrics();
    const logged = lab
      .dataplane!.entries()
      .filter((e) => e.msg === 'Transfer completed')
      .map((e) => String(e.source));
    for (const source of ['nbd', 'default']) {
      const counted = metricValue(text, 'rtftp_transfers_total', { outcome: 'completed', source });
      assert.equal(counted, logged.filter((s) => s === source).length, `source ${source}`);
    }
    const launches = text
      .split('\n')
      .filter((l) => l.startsWith('rtftp_nbd_session_launch_seconds_'));
    console.log(
      `[pxe] disk launches:\n  ${launches.filter((l) => /_(sum|count)/.test(l)).join('\n  ')}`,
    );
  });
});
