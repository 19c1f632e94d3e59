/**
 * Differential test: the same disks read through libguestfs (one guestfish appliance for
 * the whole run, every disk added before `run`, each mounted as its config says and
 * exported with tar-out) and through the native reader. Every path's type, size, bytes
 * (sha256) and symlink target must match.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectNative } from '../src/sources/native/index.ts';
import { buildFilesystemImage } from './fixtures/disk-image.ts';
import type { FileSpec, FilesystemType } from './fixtures/disk-image.ts';
import { startNbdkit } from './fixtures/nbdkit.ts';
import type { RunningNbdkit } from './fixtures/nbdkit.ts';
import {
  nativeConfig,
  nativeTree,
  quietLogger,
  randomTree,
  tarTree,
} from './native-test-support.ts';
import type { TreeEntry } from './native-test-support.ts';

const SEED = Number(process.env.RTFTP_TEST_SEED ?? Date.now() % 100000);
const hasGuestfish = spawnSync('guestfish', ['--version']).status === 0;
const skip = hasGuestfish ? false : 'guestfish (libguestfs-tools) is not installed';

interface Part {
  fs: FilesystemType;
  sizeMiB: number;
  fatBits?: 12 | 16 | 32;
  files: FileSpec[];
}
interface Disk {
  name: string;
  table: 'mbr' | 'gpt';
  parts: Part[];
  mounts: { partition: number; mountpoint: string }[];
}

const mountDirs = (dirs: string[]): FileSpec[] => dirs.map((path) => ({ path, dir: true }));
const disks: Disk[] = [
  {
    // A PC/EFI layout: FAT32 ESP at /boot/efi on an ext4 root, GPT.
    name: 'gpt',
    table: 'gpt',
    parts: [
      {
        fs: 'vfat',
        sizeMiB: 64,
        fatBits: 32,
        files: randomTree(SEED + 1, { fat: true, files: 40, big: true }),
      },
      {
        fs: 'ext4',
        sizeMiB: 40,
        files: [
          ...randomTree(SEED + 2, { fat: false, files: 60, big: true }),
          ...mountDirs(['/boot/efi']),
        ],
      },
    ],
    mounts: [
      { partition: 2, mountpoint: '/' },
      { partition: 1, mountpoint: '/boot/efi' },
    ],
  },
  {
    // MBR with five filesystems: p4 is the extended partition, p5 and p6 logical.
    name: 'mbr',
    table: 'mbr',
    parts: [
      {
        fs: 'ext2',
        sizeMiB: 32,
        files: [
          ...randomTree(SEED + 3, { fat: false, files: 40 }),
          ...mountDirs(['/mnt/b', '/mnt/c', '/mnt/e', '/mnt/f']),
        ],
      },
      { fs: 'ext3', sizeMiB: 32, files: randomTree(SEED + 4, { fat: false, files: 30 }) },
      {
        fs: 'vfat',
        sizeMiB: 32,
        fatBits: 16,
        files: randomTree(SEED + 5, { fat: true, files: 30 }),
      },
      {
        fs: 'vfat',
        sizeMiB: 8,
        fatBits: 12,
        files: randomTree(SEED + 6, { fat: true, files: 10 }),
      },
      { fs: 'ext4', sizeMiB: 24, files: randomTree(SEED + 7, { fat: false, files: 20 }) },
    ],
    mounts: [
      { partition: 1, mountpoint: '/' },
      { partition: 2, mountpoint: '/mnt/b' },
      { partition: 3, mountpoint: '/mnt/c' },
      { partition: 5, mountpoint: '/mnt/e' },
      { partition: 6, mountpoint: '/mnt/f' },
    ],
  },
];

let dir = '';
const servers: RunningNbdkit[] = [];
const guestfsTrees = new Map<string, Map<string, TreeEntry>>();

before(async () => {
  if (skip) return;
  console.log(`native-differential: seed ${SEED} (RTFTP_TEST_SEED=${SEED} to repeat)`);
  dir = await mkdtemp(join(tmpdir(), 'rtftp-native-diff-'));
  for (const disk of disks) {
    const images: string[] = [];
    for (const [i, p] of disk.parts.entries()) {
      const path = join(dir, `${disk.name}-p${i + 1}.img`);
      await buildFilesystemImage(path, {
        fs: p.fs,
        sizeMiB: p.sizeMiB,
        ...(p.fatBits && { fatBits: p.fatBits }),
        files: p.files,
      });
      images.push(path);
    }
    servers.push(await startNbdkit({ partitions: images, table: disk.table, exportName: 'disk' }));
  }
  // One appliance for every disk: sda, sdb… in the order added.
  const script = [
    ...servers.map(
      (s) =>
        `add-drive-opts disk protocol:nbd server:tcp:127.0.0.1:${s.port} format:raw readonly:true`,
    ),
    'run',
    ...disks.flatMap((d, i) => [
      ...d.mounts.map(
        (m) => `mount-ro /dev/sd${String.fromCharCode(97 + i)}${m.partition} ${m.mountpoint}`,
      ),
      `tar-out / ${join(dir, `${d.name}.tar`)}`,
      'umount-all',
    ]),
  ].join('\n');
  const fish = spawn('guestfish', ['--ro'], {
    env: { ...process.env, LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  fish.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  fish.stdin.end(script + '\n');
  const timer = setTimeout(() => fish.kill('SIGKILL'), 150_000);
  const code = await new Promise<number | null>((r) => fish.once('exit', r));
  clearTimeout(timer);
  assert.equal(code, 0, `guestfish failed: ${stderr}`);
  for (const d of disks)
    guestfsTrees.set(d.name, tarTree(await readFile(join(dir, `${d.name}.tar`))));
});

after(async () => {
  for (const s of servers) await s.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

for (const disk of disks) {
  test(
    `the ${disk.name} disk reads the same natively as through libguestfs (every path, type, size, sha256)`,
    { skip },
    async () => {
      const server = servers[disks.indexOf(disk)]!;
      const session = await connectNative({
        config: nativeConfig(server.url, disk.mounts),
        configName: `${disk.name}.nbd`,
        logger: quietLogger,
        signal: new AbortController().signal,
      });
      try {
        const native = await nativeTree(session);
        const guestfs = guestfsTrees.get(disk.name)!;
        assert.ok(guestfs.size > 100, `guestfish listed only ${guestfs.size} paths`);
        const onlyGuestfs = [...guestfs.keys()].filter((p) => !native.has(p));
        const onlyNative = [...native.keys()].filter((p) => !guestfs.has(p));
        assert.deepEqual(
          { onlyGuestfs, onlyNative },
          { onlyGuestfs: [], onlyNative: [] },
          `seed ${SEED}`,
        );
        for (const [path, g] of guestfs)
          assert.deepEqual(native.get(path), g, `${path} (seed ${SEED})`);
      } finally {
        await session.close();
      }
    },
  );
}
