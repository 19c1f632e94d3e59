/**
 * iPXE over HTTP (docs/http-boot.md): SeaBIOS + iPXE loads its script over TFTP from the
 * client's own NBD disk (read natively), and the script loads kernel and initrd over
 * HTTP from the same disk, through the same per-client view. The same boot over TFTP,
 * from a second disk with the plain script, runs beside it: both boot times are printed
 * (figures for a quiet machine; nothing here is timed).
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BootDisk } from './harness/boot-disk.ts';
import { SERVER_IP } from './harness/boot-network.ts';
import {
  bootFiles,
  buildMarkerInitrd,
  ipxeScript,
  makeNonce,
  markerText,
} from './harness/boot-payload.ts';
import { PxeLab, pxeSkipReason } from './harness/pxe-lab.ts';
import type { LabHost } from './harness/pxe-lab.ts';

const HTTP_PORT = 8069;
const skip = await pxeSkipReason();
if (skip) console.log(`# skipped iPXE over HTTP: ${skip}`);

const HTTP_HOST: LabHost = {
  name: 'http-disk',
  mac: '52:54:00:e2:e0:40',
  ip: '10.213.0.40',
  biosBootFile: 'boot.ipxe',
};
const TFTP_HOST: LabHost = {
  name: 'tftp-disk',
  mac: '52:54:00:e2:e0:41',
  ip: '10.213.0.41',
  biosBootFile: 'boot.ipxe',
};

describe(
  'iPXE loads kernel and initrd over HTTP from the client’s own disk',
  { skip: skip ?? false },
  () => {
    let lab: PxeLab;
    let httpDisk: BootDisk;
    let tftpDisk: BootDisk;
    let rescueMarker: string;
    const nonces = { http: makeNonce(), tftp: makeNonce() };

    before(async () => {
      lab = await PxeLab.create('http');
      rescueMarker = await lab.installRescuePayload();
      const disks = join(lab.workDir, 'disks');
      await mkdir(disks);
      const initrd = (n: string) => join(disks, `${n}-initrd.gz`);
      await buildMarkerInitrd(initrd('http'), HTTP_HOST.name, nonces.http);
      await buildMarkerInitrd(initrd('tftp'), TFTP_HOST.name, nonces.tftp);
      const base = `http://${SERVER_IP}:${HTTP_PORT}`;
      const overHttp = bootFiles(lab.kernel, initrd('http')).map((f) =>
        f.path === 'boot.ipxe'
          ? { ...f, content: ipxeScript(`${base}/vmlinuz`, `${base}/initrd.gz`) }
          : f,
      );
      [httpDisk, tftpDisk] = await Promise.all([
        BootDisk.create({ dir: disks, name: 'http', table: 'mbr', bootFiles: overHttp }),
        BootDisk.create({
          dir: disks,
          name: 'tftp',
          table: 'mbr',
          bootFiles: bootFiles(lab.kernel, initrd('tftp')),
        }),
      ]);
      await lab.start([HTTP_HOST, TFTP_HOST], ['--http-port', String(HTTP_PORT)]);
      await lab.dataplane!.waitFor((e) => e.msg === 'HTTP boot server listening', 30_000);
      await httpDisk.writeConfig(lab.root, HTTP_HOST.ip);
      await tftpDisk.writeConfig(lab.root, TFTP_HOST.ip);
      for (const h of [HTTP_HOST, TFTP_HOST])
        await lab.dataplane!.waitFor(
          (e) => e.msg === 'Disk connected' && e.client === h.ip,
          120_000,
        );
    });

    after(async () => {
      await lab?.close();
      await Promise.all([httpDisk?.close(), tftpDisk?.close()]);
    });

    test('script over TFTP, kernel and initrd over HTTP, all from the native disk', async () => {
      const boot = await lab.bootAndExpect(
        'bios-ipxe, kernel + initrd over HTTP from the disk',
        HTTP_HOST,
        'bios-ipxe',
        markerText(HTTP_HOST.name, nonces.http),
        [rescueMarker],
      );
      const served = lab
        .dataplane!.transfers(HTTP_HOST.ip, boot.vm.startedAt)
        .filter((t) => t.outcome === 'completed')
        .map((t) => [t.file, t.source, t.protocol]);
      assert.deepEqual(served, [
        ['boot.ipxe', 'nbd', 'tftp'],
        ['vmlinuz', 'nbd', 'http'],
        ['initrd.gz', 'nbd', 'http'],
      ]);
    });

    test('the same boot over TFTP, for comparison', async () => {
      await lab.bootAndExpect(
        'bios-ipxe, kernel + initrd over TFTP from the disk',
        TFTP_HOST,
        'bios-ipxe',
        markerText(TFTP_HOST.name, nonces.tftp),
        [rescueMarker],
      );
    });
  },
);
