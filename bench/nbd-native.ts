/**
 * Benchmark: the same NBD disk served natively and through libguestfs, side by side, and
 * the same file from a local dir as the baseline. Through the real daemon (bin/rtftp.js)
 * and a TFTP client: config written → first file received; small-file latency (RRQ of a
 * 4 KiB file: stat + read); RSS the connected disk added; 100 MiB cold; then warm rounds
 * that take turns between the sources (one transfer each per round), so a busy moment of
 * this 2-core machine hits every source alike: medians, ranges and the per-round ratio to
 * the local dir. Last, in-process through the DiskSession API, N disks connected at once.
 *
 *   node --import tsx --expose-gc bench/nbd-native.ts [--big-mib 100] [--rounds 5]
 *     [--disks 200] [--no-guestfs]
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { parseNbdConfig, renderNbdConfig } from '../common/src/nbd-config.ts';
import { connectNative } from '../dataplane/src/sources/native/index.ts';
import type { NativeDiskSession } from '../dataplane/src/sources/native/index.ts';
import { startNbdkit } from '../dataplane/test/fixtures/nbdkit.ts';
import {
  BOOT_DISK_MOUNTS,
  buildBootDisk,
  pidsMentioning,
} from '../dataplane/test/fixtures/nbd-harness.ts';
import { startRtftp } from '../dataplane/test/helpers/tftp-servers.ts';
import { median } from './lib/tftp-report.ts';
import { downloadFile } from '../dataplane/test/helpers/tftp-client.ts';
import type { DownloadResult } from '../dataplane/test/helpers/tftp-client.ts';

const { values } = parseArgs({
  options: {
    'big-mib': { type: 'string', default: '100' },
    rounds: { type: 'string', default: '5' },
    disks: { type: 'string', default: '200' },
    'no-guestfs': { type: 'boolean', default: false },
  },
});
const BIG_MIB = Number(values['big-mib']);
const ROUNDS = Number(values.rounds);
const DISKS = Number(values.disks);
const CLIENT = { local: '127.0.0.2', native: '127.0.0.3', guestfs: '127.0.0.4' } as const;
const TFTP_OPTIONS = { blksize: '1468', windowsize: '16' };
const MiB = 1024 * 1024;

const rssMiB = async (pid: number | 'self') =>
  Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

function report(name: string, value: string, note = ''): void {
  console.log(`${name.padEnd(44)} ${value.padStart(14)}  ${note}`);
}

async function get(port: number, client: string, file: string): Promise<DownloadResult> {
  return downloadFile({
    host: '127.0.0.1',
    port,
    file,
    localAddress: client,
    options: TFTP_OPTIONS,
    retransmitMs: 1000,
    maxRetries: 4,
  });
}

/** Retries until the file arrives (a disk still connecting); ms from `since` to success. */
async function firstFile(
  port: number,
  client: string,
  file: string,
  since: number,
  limitMs: number,
): Promise<number> {
  while (performance.now() - since < limitMs) {
    const r = await get(port, client, file);
    if (r.ok) return performance.now() - since;
  }
  throw new Error(`${client}: ${file} not served within ${limitMs} ms`);
}

async function throughput(
  port: number,
  client: string,
  file: string,
  expect: string,
): Promise<number> {
  const r = await get(port, client, file);
  if (!r.ok || r.sha256 !== expect)
    throw new Error(`${client}: ${file}: ${r.failure ?? r.error?.message ?? 'bad sha256'}`);
  return r.bytes / MiB / (r.durationMs / 1000);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'rtftp-bench-native-'));
  const cleanups: (() => Promise<void>)[] = [() => rm(dir, { recursive: true, force: true })];
  try {
    console.log(`building the disk (${BIG_MIB} MiB file on FAT32, ext4 root)…`);
    const small = Buffer.alloc(4096, 's');
    const smallSha = createHash('sha256').update(small).digest('hex');
    const disk = await buildBootDisk(dir, BIG_MIB, [
      { path: 'EFI/BOOT/small.bin', content: small },
    ]);
    const { bigFile: big, bigSha256: bigSha } = disk;
    const nbd = await startNbdkit({ partitions: [disk.efiImage, disk.rootImage], table: 'gpt' });
    cleanups.unshift(() => nbd.stop());

    const root = join(dir, 'root');
    await mkdir(join(root, CLIENT.local, 'boot/efi/EFI/BOOT'), { recursive: true });
    await copyFile(big, join(root, CLIENT.local, 'boot/efi/big.img'));
    await writeFile(join(root, CLIENT.local, 'boot/efi/EFI/BOOT/small.bin'), small);
    const daemonWorkDir = join(dir, 'daemon-work');
    const daemon = await startRtftp({
      root,
      args: ['--log-level', 'info', '--max-sessions', '4'],
      env: { RTFTP_WORK_DIR: daemonWorkDir },
    });
    cleanups.unshift(() => daemon.stop());
    const { port } = daemon;
    // A running server, not one still starting up: the measure is config → file.
    for (let i = 0; i < 20; i++) await get(port, CLIENT.local, 'boot/efi/EFI/BOOT/small.bin');
    const backends = values['no-guestfs']
      ? (['native'] as const)
      : (['native', 'guestfs'] as const);

    console.log(`\n${'measure'.padEnd(44)} ${'value'.padStart(14)}`);
    for (const backend of backends) {
      const client = CLIENT[backend];
      const rssBefore = await rssMiB(daemon.pid);
      const t0 = performance.now();
      await writeFile(
        join(root, `${client}.nbd`),
        renderNbdConfig({ url: nbd.url, mounts: BOOT_DISK_MOUNTS, tftpRoot: '/', backend }),
      );
      const first = await firstFile(port, client, 'boot/efi/EFI/BOOT/small.bin', t0, 240_000);
      report(`${backend}: config written → first file`, `${first.toFixed(0)} ms`);
      const lat: number[] = [];
      for (let i = 0; i < 30; i++) {
        const r = await get(port, client, 'boot/efi/EFI/BOOT/small.bin');
        if (!r.ok || r.sha256 !== smallSha) throw new Error(`${backend}: small file failed`);
        lat.push(r.durationMs);
      }
      report(`${backend}: small file (4 KiB) median`, `${median(lat).toFixed(1)} ms`);
      const rssAfter = await rssMiB(daemon.pid);
      const vmRss = backend === 'guestfs' ? await applianceRssMiB(daemonWorkDir, daemon.pid) : 0;
      report(
        `${backend}: RSS added by one disk`,
        `${(rssAfter - rssBefore + vmRss).toFixed(1)} MiB`,
        backend === 'guestfs' ? `(daemon + appliance ${vmRss.toFixed(0)} MiB)` : '(daemon)',
      );
      report(
        `${backend}: ${BIG_MIB} MiB cold`,
        `${(await throughput(port, client, 'boot/efi/big.img', bigSha)).toFixed(1)} MB/s`,
      );
    }
    const local = CLIENT.local;
    const latLocal: number[] = [];
    for (let i = 0; i < 30; i++)
      latLocal.push((await get(port, local, 'boot/efi/EFI/BOOT/small.bin')).durationMs);
    report('local dir: small file (4 KiB) median', `${median(latLocal).toFixed(1)} ms`);

    const sources = [...backends, 'local'] as const;
    const warm = new Map<string, number[]>(sources.map((b) => [b, []]));
    await get(port, local, 'boot/efi/big.img'); // the local file into the page cache
    for (let round = 0; round < ROUNDS; round++) {
      for (const b of sources) {
        warm.get(b)!.push(await throughput(port, CLIENT[b], 'boot/efi/big.img', bigSha));
      }
    }
    const localRuns = warm.get('local')!;
    for (const b of sources) {
      const runs = warm.get(b)!;
      const range = `${Math.min(...runs).toFixed(1)}–${Math.max(...runs).toFixed(1)}`;
      const ratio =
        b === 'local' ? '' : `; ${median(runs.map((v, i) => v / localRuns[i]!)).toFixed(2)}× local`;
      report(
        `${b === 'local' ? 'local dir' : b}: ${BIG_MIB} MiB warm, median of ${ROUNDS}`,
        `${median(runs).toFixed(1)} MB/s`,
        `(${range}${ratio})`,
      );
    }
    await daemon.stop();
    cleanups.shift();

    await manyDisks(nbd.url);
  } finally {
    for (const c of cleanups) await c().catch(() => undefined);
  }
}

/** RSS of the daemon's appliance processes (guestfish, qemu): they run in its work dir. */
async function applianceRssMiB(workDir: string, daemonPid: number): Promise<number> {
  let total = 0;
  for (const pid of await pidsMentioning(workDir)) {
    if (pid !== daemonPid) total += await rssMiB(pid).catch(() => 0);
  }
  return total;
}

/** N sessions at once through the DiskSession API, in this process. */
async function manyDisks(url: string): Promise<void> {
  const parsed = parseNbdConfig(
    renderNbdConfig({ url, mounts: BOOT_DISK_MOUNTS, tftpRoot: '/', backend: 'native' }),
  );
  if (!parsed.ok) throw new Error('config');
  const logger = pino({ level: 'silent' });
  global.gc?.();
  const before = await rssMiB('self');
  const t0 = performance.now();
  const sessions: NativeDiskSession[] = await Promise.all(
    Array.from({ length: DISKS }, (_, i) =>
      connectNative({
        config: parsed.config,
        configName: `10.0.${i >> 8}.${i & 255}.nbd`,
        logger,
        signal: new AbortController().signal,
      }),
    ),
  );
  const connectMs = performance.now() - t0;
  // Each disk serves a small file, as a client's first boot request does.
  await Promise.all(
    sessions.map(async (s) => {
      const r = await s.open('/boot/efi/EFI/BOOT/small.bin', new AbortController().signal);
      if (r.status !== 'found') throw new Error('small.bin');
      await r.file.read(Buffer.alloc(4096), 0, 4096, 0);
    }),
  );
  global.gc?.();
  const after = await rssMiB('self');
  report(`native: ${DISKS} disks connected at once`, `${connectMs.toFixed(0)} ms`);
  report(
    `native: RSS for ${DISKS} disks`,
    `${(after - before).toFixed(1)} MiB`,
    `(${((after - before) / DISKS).toFixed(2)} MiB per disk; cache bound 4 MiB per disk)`,
  );
  await Promise.all(sessions.map((s) => s.close()));
}

await main();
