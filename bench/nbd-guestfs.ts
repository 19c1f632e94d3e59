/**
 * NBD-through-libguestfs benchmark, through the NBD source (the interface the TFTP
 * transfers read from), with real nbdkit and a real appliance:
 * - cold: config written → disk connected (proactive), then the first open + read of a
 *   small file once connected (target < 50 ms);
 * - a client that asks right after its config is written (lazy): time to its first byte;
 * - MB/s of a 100 MiB file read in 64 KiB blocks: first read, warm read, and the same
 *   file from a local dir, in one run;
 * - peak RSS (VmHWM) of qemu and guestfish for the session, and of this process.
 * Run: node --import tsx bench/nbd-guestfs.ts [--size-mib 100] [--memsize 256] [--tcg-cache 64] [--kvm auto]
 *   [--chunk-kib 1024] [--read-ahead 2]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { renderNbdConfig } from '../common/src/nbd-config.ts';
import { createDataplaneMetrics } from '../dataplane/src/metrics.ts';
import { createNbdSource } from '../dataplane/src/sources/nbd/index.ts';
import type { KvmMode } from '../dataplane/src/sources/nbd/kvm-probe.ts';
import { openConfined } from '../dataplane/src/sources/confine.ts';
import type { OpenedFile } from '../dataplane/src/sources/source.ts';
import {
  BOOT_DISK_MOUNTS,
  buildBootDisk,
  captureLogger,
  hashOpenedFile,
  peakRssKiB,
  pidsMentioning,
  waitFor,
} from '../dataplane/test/fixtures/nbd-harness.ts';
import { startNbdkit } from '../dataplane/test/fixtures/nbdkit.ts';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '100' },
    memsize: { type: 'string', default: '256' },
    'tcg-cache': { type: 'string', default: '64' },
    kvm: { type: 'string', default: 'auto' },
    'chunk-kib': { type: 'string', default: '1024' },
    'read-ahead': { type: 'string', default: '2' },
  },
});
const sizeMiB = Number(values['size-mib']);
const CLIENT = '127.0.0.5';
const never = new AbortController().signal;

const work = await mkdtemp(join(tmpdir(), 'rtftp-bench-nbd-'));
const root = join(work, 'root');
await mkdir(root, { recursive: true });
const disk = await buildBootDisk(work, sizeMiB);
const server = await startNbdkit({ partitions: [disk.efiImage, disk.rootImage], exportName: 'b' });
const workDir = join(work, 'w');
const { logger } = captureLogger();
const nbd = createNbdSource({
  root,
  logger,
  metrics: createDataplaneMetrics(undefined, false),
  idleTimeoutS: 600,
  diskWaitS: 600,
  maxSessions: 4,
  applianceMemoryMiB: Number(values.memsize),
  tcgCacheMiB: Number(values['tcg-cache']),
  workDir,
  applianceCacheDir: join(tmpdir(), 'rtftp-test-appliance-cache'),
  kvm: values.kvm as KvmMode,
  chunkBytes: Number(values['chunk-kib']) * 1024,
  readAhead: Number(values['read-ahead']),
});
const results: Record<string, string | number> = {};
const state = () => (nbd.status().disks[0] as { state?: string } | undefined)?.state;
const openNbd = async (name: string): Promise<OpenedFile> => {
  const r = await nbd.source.open(
    { clientIp: CLIENT, components: name.split('/'), raw: name },
    never,
  );
  if (r.status !== 'found') throw new Error(`${name}: ${JSON.stringify(r)}`);
  return r.file;
};
/** The same file as the local-dir source opens it. */
const localFile = async (name: string): Promise<OpenedFile> => {
  const r = await openConfined(work, [name]);
  if (r.status !== 'found') throw new Error(`${name}: ${JSON.stringify(r)}`);
  return r.file;
};
const mbPerS = async (file: OpenedFile) => {
  const started = performance.now();
  const got = await hashOpenedFile(file, 65536);
  const ms = performance.now() - started;
  await file.close();
  if (got.sha256 !== disk.bigSha256) throw new Error('bytes differ');
  return +(got.bytes / 1e6 / (ms / 1000)).toFixed(1);
};
const config = (prefetch: boolean) =>
  renderNbdConfig({
    url: server.url,
    mounts: BOOT_DISK_MOUNTS,
    tftpRoot: '/boot',
    backend: 'guestfs',
    prefetch,
  });

try {
  await nbd.start();
  let t = performance.now();
  await writeFile(join(root, `${CLIENT}.nbd`), config(true));
  await waitFor('connected', () => state() === 'connected', 900_000, 20);
  results['config written → disk connected, proactive (ms)'] = Math.round(performance.now() - t);
  t = performance.now();
  const small = await openNbd('vmlinuz-6.1');
  await small.read(Buffer.alloc(64), 0, 64, 0);
  await small.close();
  results['first open + read once connected (ms)'] = Math.round(performance.now() - t);

  results['NBD first read of 100 MiB (MB/s)'] = await mbPerS(await openNbd('efi/big.img'));
  results['NBD warm read (MB/s)'] = await mbPerS(await openNbd('efi/big.img'));
  results['local dir read (MB/s)'] = await mbPerS(await localFile('big.bin'));
  results['NBD warm / local'] = +(
    (results['NBD warm read (MB/s)'] as number) / (results['local dir read (MB/s)'] as number)
  ).toFixed(3);

  const qemu = await pidsMentioning(workDir, 'qemu-system');
  const fish = (await pidsMentioning(workDir)).filter((p) => !qemu.includes(p));
  results['peak RSS qemu (MiB)'] = Math.round((await peakRssKiB(qemu[0] ?? 0)) / 1024);
  results['peak RSS guestfish processes (MiB)'] = Math.round(
    (await Promise.all(fish.map(peakRssKiB))).reduce((a, b) => a + b, 0) / 1024,
  );
  results['peak RSS this process (MiB)'] = Math.round((await peakRssKiB(process.pid)) / 1024);

  // Lazy: the config appears and the client asks at once; its request waits for the disk.
  await rm(join(root, `${CLIENT}.nbd`));
  await waitFor('removed', () => nbd.status().disks.length === 0, 30_000);
  t = performance.now();
  await writeFile(join(root, `${CLIENT}.nbd`), config(false));
  await waitFor('config seen', () => nbd.status().disks.length === 1, 10_000, 10);
  const waited = await openNbd('vmlinuz-6.1');
  await waited.read(Buffer.alloc(64), 0, 64, 0);
  await waited.close();
  results['config written → first byte, lazy, request waiting (ms)'] = Math.round(
    performance.now() - t,
  );
} finally {
  await nbd.stop();
  await server.stop();
  await rm(work, { recursive: true, force: true });
}
console.log(JSON.stringify(results, null, 2));
