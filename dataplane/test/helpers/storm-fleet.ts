/**
 * The boot storm's fleet (bench/storm.ts and the reduced storm test): N clients, each with
 * its own source address on loopback (Linux routes all of 127/8 to lo, so no namespace per
 * client is needed) and its own NBD disk. One nbdkit (`file` plugin, `dir=`) serves a
 * directory of hard links, one per client, to a few disk images ("variants", GPT with an
 * ext4 root holding /boot/vmlinuz and /boot/initrd.img): 500 disks cost the space of the
 * variants alone. Neighbouring clients get different variants, so a byte served from the
 * wrong client's disk fails the byte-identical check.
 *
 * The same payloads, as local files, make the peers' root (`v<k>/vmlinuz`): tftp-hpa and
 * dnsmasq have no per-client views.
 */
import { linkSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderNbdConfig } from '../../../common/src/nbd-config.ts';
import { buildFilesystemImage, buildPartitionedDisk } from '../fixtures/disk-image.ts';
import { startNbdkit } from '../fixtures/nbdkit.ts';
import type { RunningNbdkit } from '../fixtures/nbdkit.ts';
import { writeSeededFile } from './fixtures.ts';

export const STORM_FILES = ['vmlinuz', 'initrd.img'] as const;
export type StormFileName = (typeof STORM_FILES)[number];

export interface StormFleetSpec {
  /** Scratch directory the fleet lives in (the caller removes it). */
  dir: string;
  clients: number;
  kernelBytes: number;
  initrdBytes: number;
  /** Distinct disk images; client i gets variant i % variants (default 2). */
  variants?: number;
  /** nbdkit threads per connection (default 4: the native reader keeps few reads in flight). */
  nbdThreads?: number;
}

export interface StormVariant {
  /** Local copies of what the disk holds, by file name: the oracle and the peers' payload. */
  files: Record<StormFileName, { path: string; size: number; sha256: string }>;
}

export interface StormClient {
  index: number;
  address: string;
  variant: number;
}

export interface StormFleet {
  clients: StormClient[];
  variants: StormVariant[];
  /** rtftp's root: one `<ip>.nbd` per client, an empty default/. */
  rtftpRoot: string;
  /** The peers' root: `v<k>/<file>`, hard links of the variants' files. */
  peerRoot: string;
  /** The file name a client asks for from rtftp (its disk's tftp_root is /boot). */
  rtftpPath(client: StormClient, file: StormFileName): string;
  /** The file name a client asks for from a peer (no per-client views there). */
  peerPath(client: StormClient, file: StormFileName): string;
  nbd: RunningNbdkit;
  stop(): Promise<void>;
}

/** Clients per /24: a full rack on one subnet is common on boot networks (Pi clusters). */
export const STORM_CLIENTS_PER_SUBNET = 200;

/** Client i's address: 127.100.<i / 200>.<i % 200 + 1>. */
export function stormClientAddress(i: number): string {
  const subnet = Math.floor(i / STORM_CLIENTS_PER_SUBNET);
  if (subnet > 255) throw new RangeError(`at most ${256 * STORM_CLIENTS_PER_SUBNET} clients`);
  return `127.100.${subnet}.${(i % STORM_CLIENTS_PER_SUBNET) + 1}`;
}

const MiB = 1024 * 1024;

async function buildVariant(dir: string, k: number, spec: StormFleetSpec) {
  const vdir = join(dir, `v${k}`);
  mkdirSync(vdir, { recursive: true });
  const sizes: Record<StormFileName, number> = {
    vmlinuz: spec.kernelBytes,
    'initrd.img': spec.initrdBytes,
  };
  const files = {} as StormVariant['files'];
  for (const [j, name] of STORM_FILES.entries()) {
    const path = join(vdir, name);
    const sha256 = writeSeededFile(path, sizes[name], 7000 + 10 * k + j);
    files[name] = { path, size: sizes[name], sha256 };
  }
  const rootImage = join(dir, `root-v${k}.ext4`);
  const payloadMiB = Math.ceil((spec.kernelBytes + spec.initrdBytes) / MiB);
  await buildFilesystemImage(rootImage, {
    fs: 'ext4',
    sizeMiB: payloadMiB + 16,
    label: `storm${k}`,
    blockSize: 4096,
    files: [
      { path: 'etc/hostname', content: `storm-v${k}\n` },
      ...STORM_FILES.map((name) => ({ path: `boot/${name}`, fromFile: files[name].path })),
    ],
  });
  const disk = join(dir, `disk-v${k}.img`);
  await buildPartitionedDisk(disk, { table: 'gpt', partitions: [rootImage] });
  return { variant: { files }, disk };
}

export async function createStormFleet(spec: StormFleetSpec): Promise<StormFleet> {
  const variantCount = Math.max(1, spec.variants ?? 2);
  const built = [];
  for (let k = 0; k < variantCount; k++) built.push(await buildVariant(spec.dir, k, spec));
  const exportsDir = join(spec.dir, 'exports');
  mkdirSync(exportsDir);
  const clients: StormClient[] = Array.from({ length: spec.clients }, (_, index) => ({
    index,
    address: stormClientAddress(index),
    variant: index % variantCount,
  }));
  for (const c of clients) linkSync(built[c.variant]!.disk, join(exportsDir, `c${c.index}`));
  // A unix socket: reachable from inside the benchmark's network namespace as well.
  const nbd = await startNbdkit({
    dir: exportsDir,
    unixSocket: true,
    threads: spec.nbdThreads ?? 4,
  });
  try {
    const rtftpRoot = join(spec.dir, 'rtftp-root');
    mkdirSync(join(rtftpRoot, 'default'), { recursive: true });
    for (const c of clients) {
      const config = renderNbdConfig({
        url: `nbd+unix:///c${c.index}?socket=${nbd.socket!}`,
        mounts: [{ partition: 1, mountpoint: '/' }],
        tftpRoot: '/boot',
        backend: 'native',
      });
      writeFileSync(join(rtftpRoot, `${c.address}.nbd`), config);
    }
    const peerRoot = join(spec.dir, 'peer-root');
    for (const [k, b] of built.entries()) {
      mkdirSync(join(peerRoot, `v${k}`), { recursive: true });
      for (const name of STORM_FILES)
        linkSync(b.variant.files[name].path, join(peerRoot, `v${k}`, name));
    }
    return {
      clients,
      variants: built.map((b) => b.variant),
      rtftpRoot,
      peerRoot,
      rtftpPath: (_c, file) => file,
      peerPath: (c, file) => `v${c.variant}/${file}`,
      nbd,
      stop: () => nbd.stop(),
    };
  } catch (err) {
    await nbd.stop();
    throw err;
  }
}
