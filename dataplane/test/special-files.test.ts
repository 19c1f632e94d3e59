/**
 * Only regular files are served, from local dirs and disks alike: a FIFO, a character
 * device and a socket, under the root and inside a native ext4 disk (mke2fs -d, served
 * by nbdkit), each asked for by real TFTP requests to the real daemon. Each gets ERROR 2
 * with a named reason, at once; meanwhile another client is served and /healthz stays
 * ok. (Before: an open(2) of a FIFO blocked a thread of libuv's pool until a writer came,
 * so four such requests wedged every file read of the server.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderNbdConfig } from '../../common/src/nbd-config.ts';
import { buildFilesystemImage, makeSpecialFile } from './fixtures/disk-image.ts';
import type { FileSpec } from './fixtures/disk-image.ts';
import { startNbdkit } from './fixtures/nbdkit.ts';
import type { RunningNbdkit } from './fixtures/nbdkit.ts';
import { makeTempDir, seededBytes } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { rtftpMissingReason, startRtftpWithHttp, metricValue } from './helpers/tftp-servers.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';
import { downloadFile } from './helpers/tftp-client.ts';
import type { DownloadResult } from './helpers/tftp-client.ts';

const DISK_CLIENT = '127.0.0.7';
const OTHER_CLIENT = '127.0.0.3';
interface Special {
  name: string;
  special: NonNullable<FileSpec['special']>;
  reason: string;
}
const SPECIALS = (
  [
    { name: 'fifo', special: 'fifo', reason: 'not a regular file (fifo)' },
    { name: 'null', special: 'char-device', reason: 'not a regular file (device)' },
    { name: 'sock', special: 'socket', reason: 'not a regular file (socket)' },
    // mknod needs root: without it, the device is left out (and said so).
  ] satisfies Special[]
).filter((s) => s.special !== 'char-device' || process.getuid?.() === 0);
if (SPECIALS.length < 3) console.log('# not root: no device node in this run (mknod needs root)');

describe(
  'special files are refused, from the root and from a disk',
  { skip: rtftpMissingReason(), timeout: 120_000 },
  () => {
    let dir: TempDir;
    let server: RunningServer;
    let nbd: RunningNbdkit;
    let metricsPort = 0;
    const hello = seededBytes(4096, 7);

    before(async () => {
      dir = makeTempDir('rtftp-special');
      const root = dir.file('root');
      await mkdir(join(root, 'default'), { recursive: true });
      await writeFile(join(root, 'default', 'hello.txt'), hello);
      for (const s of SPECIALS) await makeSpecialFile(s.special, join(root, 'default', s.name));
      const image = dir.file('disk.img');
      await buildFilesystemImage(image, {
        fs: 'ext4',
        sizeMiB: 16,
        files: [
          { path: 'boot/kernel', content: 'disk kernel' },
          ...SPECIALS.map((s) => ({ path: `boot/${s.name}`, special: s.special })),
        ],
      });
      nbd = await startNbdkit({ image });
      await writeFile(
        join(root, `${DISK_CLIENT}.nbd`),
        renderNbdConfig({
          url: nbd.url,
          mounts: [{ partition: 0, mountpoint: '/' }],
          tftpRoot: '/boot',
          backend: 'native',
        }),
      );
      ({ server, httpPort: metricsPort } = await startRtftpWithHttp(root));
    });

    after(async () => {
      await server?.stop();
      await nbd?.stop();
      dir?.remove();
    });

    const get = (file: string, localAddress: string): Promise<DownloadResult> =>
      downloadFile({
        host: '127.0.0.1',
        port: server.port,
        file,
        localAddress,
        keep: true,
        maxRetries: 4,
      });

    it('refuses each at once with ERROR 2 and a named reason, while another client is served', async () => {
      // Two rounds of every special file, from the root and from the disk, all at once:
      // more than libuv's 4 threads, so a blocking open of one FIFO would starve the rest.
      const hostile = [1, 2].flatMap(() =>
        SPECIALS.flatMap((s) => [get(s.name, '127.0.0.2'), get(s.name, DISK_CLIENT)]),
      );
      const started = performance.now();
      const other = await get('hello.txt', OTHER_CLIENT);
      const otherMs = performance.now() - started;
      assert.ok(
        other.ok,
        `the other client failed: ${other.failure ?? JSON.stringify(other.error)}`,
      );
      assert.ok(other.data?.equals(hello));
      for (const r of await Promise.all(hostile)) {
        assert.deepEqual(r.error, { code: 2, message: 'access violation' }, JSON.stringify(r));
      }
      console.log(
        `# other client's 4 KiB file during ${hostile.length} special-file requests: ${otherMs.toFixed(1)} ms`,
      );
      // A generous bound: a loaded machine stretches it; a wedged pool makes it never.
      assert.ok(otherMs < 3000, `the other client waited ${otherMs.toFixed(0)} ms`);
      // The disk still serves its regular files.
      const kernel = await get('kernel', DISK_CLIENT);
      assert.equal(kernel.data?.toString(), 'disk kernel');
    });

    it('names each reason in the log and the refusal metric', async () => {
      const refused = server.logs.filter((l) => l.msg === 'Request refused');
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      for (const s of SPECIALS) {
        for (const client of ['127.0.0.2', DISK_CLIENT]) {
          assert.ok(
            refused.some((l) => l.client === client && l.file === s.name && l.reason === s.reason),
            `no "Request refused" line for ${s.name} from ${client} with reason "${s.reason}"`,
          );
        }
        assert.equal(metricValue(metrics, `rtftp_requests_refused_total{reason="${s.reason}"}`), 4);
      }
    });

    it('keeps /healthz ok: nothing is stuck', async () => {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: 'ok' });
    });
  },
);
