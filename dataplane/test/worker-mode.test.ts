/**
 * Worker mode (--workers 2, docs/performance.md) where it differs from routing by source
 * address: a Raspberry Pi asks for `<serial>/…` from a dynamic address, and must be
 * served from the disk of the client whose config declares that serial — which lives in
 * the worker of that client, not of the address the request came from. Eight dynamic
 * addresses ask for each of two Pis' files, so with a random routing seed some of them
 * are routed by another worker than the Pi's (all sixteen on the right one by chance:
 * 2^-16). HTTP boot, served on the main thread, reads each file in the worker of its client
 * (workers/remote-files.ts): the same sixteen requests over HTTP, and ranges.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderNbdConfig } from '../../common/src/nbd-config.ts';
import { buildFilesystemImage } from './fixtures/disk-image.ts';
import { startNbdkit } from './fixtures/nbdkit.ts';
import type { RunningNbdkit } from './fixtures/nbdkit.ts';
import { makeTempDir, seededBytes, sha256 } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { curl, startRtftpWithHttpBoot } from './helpers/http-boot.ts';
import { downloadFile } from './helpers/tftp-client.ts';
import { metricValue, rtftpMissingReason } from './helpers/tftp-servers.ts';
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
    let httpPort: number;
    let metricsPort: number;
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
      ({
        server: rtftp,
        httpPort,
        metricsPort,
      } = await startRtftpWithHttpBoot(root, ['--workers', '2']));
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

    it("over HTTP too: every dynamic address gets each Pi's own file, whole and in ranges", async () => {
      for (const address of DYNAMIC)
        for (const pi of PIS) {
          const url = `http://127.0.0.1:${httpPort}/${pi.serial}/start4.elf`;
          const whole = await curl(url, [], address);
          assert.equal(whole.status, 200, `${address} ${pi.serial}`);
          assert.equal(sha256(whole.body), sha256(pi.file), `${address} asking for ${pi.serial}`);
          // A range near the end (past the first 256 KiB read of the larger file).
          const from = pi.file.length - 20_000;
          const part = await curl(url, ['-H', `Range: bytes=${from}-${from + 9999}`], address);
          assert.equal(part.status, 206);
          assert.ok(part.body.equals(pi.file.subarray(from, from + 10_000)));
        }
      const missing = await curl(`http://127.0.0.1:${httpPort}/${PIS[0]!.serial}/nothing`);
      assert.equal(missing.status, 404);
      // Every file handed back to its worker, and the one admission free again.
      // (the last response's release may trail curl's exit by a moment).
      let reserved: number | undefined;
      for (let i = 0; i < 50 && reserved !== 0; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 100));
        const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        reserved = metricValue(metrics, 'rtftp_transfer_memory_bytes');
      }
      assert.equal(reserved, 0);
      assert.ok(rtftp.alive());
    });
  },
);
