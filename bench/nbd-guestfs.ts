/**
 * NBD-through-libguestfs benchmark, through the real daemon and TFTP on loopback:
 * - cold: config written → disk connected (proactive), and the first RRQ's first byte
 *   once it is connected;
 * - a client that sends its RRQ right after the config is written (waits for the disk);
 * - warm MB/s of a 100 MiB file from the NBD disk vs the same file from a local dir,
 *   blksize 1468 and 65464 (windowsize 8), in one run;
 * - peak RSS (VmHWM) of the daemon, guestfish and qemu for one session.
 * Run: node --import tsx bench/nbd-guestfs.ts [--size-mib 100] [--memsize 256]
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { renderNbdConfig } from '../common/src/nbd-config.ts';
import {
  BOOT_DISK_MOUNTS,
  buildBootDisk,
  peakRssKiB,
  pidsMentioning,
} from '../dataplane/test/fixtures/nbd-harness.ts';
import { startNbdkit } from '../dataplane/test/fixtures/nbdkit.ts';
import { downloadFile } from '../dataplane/test/helpers/tftp-client.ts';
import { startRtftp } from '../dataplane/test/helpers/tftp-servers.ts';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '100' },
    memsize: { type: 'string', default: '256' },
  },
});
const sizeMiB = Number(values['size-mib']);
const CLIENT = '127.0.0.5';
const LOCAL_CLIENT = '127.0.0.7';

const work = await mkdtemp(join(tmpdir(), 'rtftp-bench-nbd-'));
const root = join(work, 'root');
await mkdir(join(root, 'default'), { recursive: true });
await mkdir(join(root, LOCAL_CLIENT, 'efi'), { recursive: true });
const disk = await buildBootDisk(work, sizeMiB);
await copyFile(join(work, 'big.bin'), join(root, LOCAL_CLIENT, 'efi', 'big.img'));
const nbd = await startNbdkit({ partitions: [disk.efiImage, disk.rootImage], exportName: 'b' });
const workDir = join(work, 'w');
const server = await startRtftp({
  root,
  args: [
    ...['--work-dir', workDir, '--appliance-memory', String(values.memsize)],
    ...['--appliance-cache-dir', join(tmpdir(), 'rtftp-test-appliance-cache')],
    ...['--idle-timeout', '600', '--disk-wait', '300'],
  ],
});
const results: Record<string, string | number> = {};
const get = (file: string, localAddress: string, blksize = 1468, windowsize = 1) =>
  downloadFile({
    host: '127.0.0.1',
    port: server.port,
    file,
    localAddress,
    options: { blksize: String(blksize), windowsize: String(windowsize) },
    retransmitMs: 1000,
    maxRetries: 400,
  });

try {
  // Cold, proactive: config written → connected → first RRQ.
  const config = (prefetch: boolean) =>
    renderNbdConfig({
      url: nbd.url,
      mounts: BOOT_DISK_MOUNTS,
      tftpRoot: '/boot',
      backend: 'guestfs',
      prefetch,
    });
  let t = Date.now();
  await writeFile(join(root, `${CLIENT}.nbd`), config(true));
  await server.waitForLog((l) => l.msg === 'Disk connected', 600_000);
  results['config written → disk connected (ms)'] = Date.now() - t;
  const first = await get('vmlinuz-6.1', CLIENT);
  if (!first.ok) throw new Error(`first RRQ failed: ${first.failure ?? first.error?.message}`);
  results['first RRQ after connect, whole small file (ms)'] = Math.round(first.durationMs);

  const qemu = await pidsMentioning(workDir, 'qemu-system');
  const fish = (await pidsMentioning(workDir)).filter((p) => !qemu.includes(p));

  for (const [blksize, windowsize] of [
    [1468, 1],
    [65464, 8],
  ] as const) {
    const label = `blksize ${blksize} windowsize ${windowsize}`;
    const cold = await get('efi/big.img', CLIENT, blksize, windowsize);
    const warm = await get('efi/big.img', CLIENT, blksize, windowsize);
    const local = await get('efi/big.img', LOCAL_CLIENT, blksize, windowsize);
    for (const r of [cold, warm, local]) {
      if (!r.ok || r.sha256 !== disk.bigSha256)
        throw new Error(`${label}: transfer wrong: ${JSON.stringify(r)}`);
    }
    const mbs = (ms: number) => +((sizeMiB * 1.048576) / (ms / 1000)).toFixed(1);
    results[`${label}: NBD first read MB/s`] = mbs(cold.durationMs);
    results[`${label}: NBD warm MB/s`] = mbs(warm.durationMs);
    results[`${label}: local dir MB/s`] = mbs(local.durationMs);
    results[`${label}: NBD warm / local`] = +(
      warm.durationMs ? local.durationMs / warm.durationMs : 0
    ).toFixed(2);
  }

  results['peak RSS qemu (MiB)'] = Math.round((await peakRssKiB(qemu[0] ?? 0)) / 1024);
  results['peak RSS guestfish (MiB)'] = Math.round(
    (await Promise.all(fish.map(peakRssKiB))).reduce((a, b) => a + b, 0) / 1024,
  );
  results['peak RSS daemon (MiB)'] = Math.round((await peakRssKiB(server.pid)) / 1024);

  // A client that asks right after its config appears: its RRQ waits for the disk.
  await rm(join(root, `${CLIENT}.nbd`));
  await server.waitForLog((l) => l.msg === 'Disk disconnected', 60_000);
  t = Date.now();
  await writeFile(join(root, `${CLIENT}.nbd`), config(false));
  await new Promise((r) => setTimeout(r, 200)); // the watcher's debounce
  const waited = await get('vmlinuz-6.1', CLIENT);
  results['config written → first file served, lazy, client retrying (ms)'] = waited.ok
    ? Date.now() - t
    : `failed: ${waited.failure ?? waited.error?.message}`;
} finally {
  await server.stop();
  await nbd.stop();
  await rm(work, { recursive: true, force: true });
}
console.log(JSON.stringify(results, null, 2));
