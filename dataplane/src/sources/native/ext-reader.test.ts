import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildExt } from './memory-images.ts';
import type { MemoryEntry } from './memory-images.ts';
import { mountMemory, readWhole } from './test-mount.ts';
import { inodeMtimeMs } from './ext-inode.ts';

const big = Buffer.from(Array.from({ length: 20 * 1024 }, (_, i) => i % 251));
const entries: MemoryEntry[] = [
  { path: 'boot/vmlinuz-6.1', content: big },
  { path: 'boot/vmlinuz', symlink: 'vmlinuz-6.1' },
  { path: 'boot/grub/grub.cfg', content: Buffer.from('set timeout=1\n') },
  { path: 'vmlinuz', symlink: '/boot/vmlinuz' },
  { path: 'long-link', symlink: '/boot/grub/../grub/./grub.cfg'.padEnd(70, '/') },
  { path: 'loop-a', symlink: 'loop-b' },
  { path: 'loop-b', symlink: 'loop-a' },
  { path: 'escape', symlink: '../../../../boot/grub/grub.cfg' },
  { path: 'empty', content: Buffer.alloc(0) },
];

for (const extents of [false, true]) {
  const kind = extents ? 'extents' : 'block map';
  test(`reads ext files through the ${kind}, 20 blocks: past the 12 direct ones`, async () => {
    const { vfs, disk } = await mountMemory(buildExt(entries, { extents }));
    assert.deepEqual(await readWhole(vfs, disk, '/boot/vmlinuz-6.1'), big);
    assert.deepEqual(await readWhole(vfs, disk, '/empty'), Buffer.alloc(0));
    const tree = await vfs.walk(disk.begin());
    assert.deepEqual(
      tree.find((e) => e.path === '/boot/vmlinuz'),
      {
        path: '/boot/vmlinuz',
        kind: 'symlink',
        size: 11,
        target: 'vmlinuz-6.1',
      },
    );
  });

  test(`resolves fast and slow symlinks inside the virtual FS only (${kind})`, async () => {
    const { vfs, disk } = await mountMemory(buildExt(entries, { extents }));
    assert.deepEqual(await readWhole(vfs, disk, '/vmlinuz'), big);
    assert.deepEqual(await readWhole(vfs, disk, '/long-link'), Buffer.from('set timeout=1\n'));
    // `..` stops at the virtual root, as in a chroot: never outside the disk.
    assert.deepEqual(await readWhole(vfs, disk, '/escape'), Buffer.from('set timeout=1\n'));
    await assert.rejects(vfs.resolve('/loop-a', disk.begin()), {
      code: 'RTFTP_ERR_OVER_BUDGET',
      budget: 'symlink-hops',
    });
  });
}

test('ext directory entries with an impossible length are a corrupt disk', async () => {
  const img = buildExt(entries);
  // Root directory block: the first data block after the inode table; break "."'s rec_len.
  const rootBlock = img.readUInt32LE(5 * 1024 + 128 + 40);
  img.writeUInt16LE(3, rootBlock * 1024 + 4);
  const { vfs, disk } = await mountMemory(img);
  await assert.rejects(vfs.walk(disk.begin()), { reason: 'corrupt', message: /entry length/ });
});

test('an inode’s mtime: signed seconds, with the extra field’s epoch bits and nanoseconds', () => {
  const small = Buffer.alloc(128);
  small.writeInt32LE(1_700_000_000, 0x10);
  assert.equal(inodeMtimeMs(small), 1_700_000_000_000);
  small.writeInt32LE(-1, 0x10);
  assert.equal(inodeMtimeMs(small), -1000, 'before 1970');
  const large = Buffer.alloc(256);
  large.writeUInt16LE(32, 0x80); // i_extra_isize: holds i_mtime_extra
  large.writeInt32LE(5, 0x10);
  large.writeUInt32LE((123_456_789 << 2) | 1, 0x88);
  assert.equal(inodeMtimeMs(large), (2 ** 32 + 5) * 1000 + 123);
  large.writeUInt16LE(4, 0x80); // too small to hold it: ignored
  assert.equal(inodeMtimeMs(large), 5000);
});
