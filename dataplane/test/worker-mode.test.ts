/**
 * Worker mode (--workers 2, docs/performance.md) where it differs from routing by source
 * address: a Raspberry Pi asks for `<serial>/…` from a dynamic address, and must be
 * served from the disk of the client whose config declares that serial — which lives in
 * the worker of that client, not of the address the request came from. Eight dynamic
 * addresses ask for each of two Pis' files, so with a random routing seed some of them
 * are routed by another worker than the Pi's (all sixteen on the right one by chance:
 * 2^-16). Also: HTTP boot and worker mode together are refused with one line.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderNbdConfig } from '../../common/src/nbd-config.ts';
import { buildFilesystemImage } from './fixtures/disk-image.ts';
import { startNbdkit } from './fixtures/nbdkit.ts';
import type { RunningNbdkit } from './fixtures/nbdkit.ts';
import { makeTempDir, seededBytes, sha256 } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { downloadFile } from './helpers/tftp-client.ts';
import { RTFTP_BIN, rtftpMissingReason, startRtftp } from './helpers/tftp-servers.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';

const PIS = [
  { serial: 'abcd0001', configIp: '127.0.0.60', file: seededBytes(300_007, 71) },
  { serial: 'abcd0002', configIp: '127.0.0.61', file: seededBytes(200_003, 72) },
];
const DYNAMIC = Array.from({ length: 8 }, (_, i) => `127.0.0.${90 + i}`);

describe(
  'worker mode: requests by serial',
  { skip: rtftpMissingReason(), timeout: 180_000 },
  () => {
    let dir: TempDir;
    let rtftp: RunningServer;
    const disks: RunningNbdkit[] = [];

    before(async () => {
      dir = makeTempDir('rtftp-worker-serial');
      const root = dir.file('root');
      await mkdir(join(root, 'default'), { recursive: true });
      // Served by address instead of by serial, a client would get this one.
      await writeFile(join(root, 'default', 'start4.elf'), 'the default file\n');
      for (const pi of PIS) {
        const image = dir.file(`${pi.serial}.img`);
        await buildFilesystemImage(image, {
          fs: 'vfat',
          sizeMiB: 16,
          label: 'BOOT',
          files: [{ path: 'start4.elf', content: pi.file }],
        });
        const nbd = await startNbdkit({ image });
        disks.push(nbd);
        await writeFile(
          join(root, `${pi.configIp}.nbd`),
          renderNbdConfig({
            url: nbd.url,
            mounts: [{ partition: 0, mountpoint: '/' }],
            tftpRoot: '/',
            backend: 'native',
            serial: pi.serial,
          }),
        );
      }
      rtftp = await startRtftp({ root, args: ['--grace-period', '1', '--workers', '2'] });
      for (const pi of PIS)
        await rtftp.waitForLog((l) => l.msg === 'Disk connected' && l.client === pi.configIp);
    });

    after(async () => {
      await rtftp?.stop();
      await Promise.all(disks.map((d) => d.stop()));
      dir?.remove();
    });

    it("every dynamic address gets each Pi's own file by its serial", async () => {
      for (const address of DYNAMIC)
        for (const pi of PIS) {
          const r = await downloadFile({
            host: '127.0.0.1',
            port: rtftp.port,
            file: `${pi.serial}/start4.elf`,
            options: { blksize: '1024' },
            localAddress: address,
          });
          assert.ok(r.ok, `${address} ${pi.serial}: ${r.failure ?? JSON.stringify(r.error)}`);
          assert.equal(r.sha256, sha256(pi.file), `${address} asking for ${pi.serial}`);
        }
      assert.ok(rtftp.alive());
    });

    it('HTTP boot with more than one worker is refused at start, in one line', () => {
      const r = spawnSync(
        process.execPath,
        [RTFTP_BIN, '--root', dir.path, '--port', '0', '--workers', '2', '--http-port', '8080'],
        { encoding: 'utf8', timeout: 30_000 },
      );
      assert.equal(r.status, 2, r.stdout + r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 1, r.stdout);
      assert.match(lines[0]!, /HTTP boot is not served in worker mode/);
    });
  },
);
