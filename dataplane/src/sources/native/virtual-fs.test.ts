import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildExt, buildFat12, mbrSector, writeGpt } from './memory-images.ts';
import { mountMemory, readWhole } from './test-mount.ts';

const SECTOR = 512;

/** A disk with the FAT image at partition 1 and the ext image at partition 2. */
function twoPartitionDisk(table: 'mbr' | 'gpt', fat: Buffer, ext: Buffer): Buffer {
  const p1 = 2048;
  const p2 = p1 + fat.length / SECTOR;
  const disk = Buffer.alloc((p2 + ext.length / SECTOR + 64) * SECTOR);
  const parts = [
    { start: p1, sectors: fat.length / SECTOR, type: 0x0c },
    { start: p2, sectors: ext.length / SECTOR },
  ];
  if (table === 'gpt') writeGpt(disk, parts);
  else mbrSector(parts).copy(disk, 0);
  fat.copy(disk, p1 * SECTOR);
  ext.copy(disk, p2 * SECTOR);
  return disk;
}

const fat = buildFat12([{ path: 'cmdline.txt', content: Buffer.from('root=/dev/nbd0p2') }]);
const ext = buildExt([
  { path: 'boot/firmware', dir: true },
  { path: 'boot/firmware/hidden', content: Buffer.from('hidden by the mount') },
  { path: 'boot/vmlinuz', content: Buffer.from('kernel') },
  { path: 'etc/hostname', content: Buffer.from('pi\n') },
  { path: 'fw', symlink: 'boot/firmware' },
]);

for (const table of ['mbr', 'gpt'] as const) {
  test(`mounts partitions in order, a later mount hiding the directory under it (${table})`, async () => {
    const { vfs, disk } = await mountMemory(twoPartitionDisk(table, fat, ext), [
      { partition: 2, mountpoint: '/' },
      { partition: 1, mountpoint: '/boot/firmware' },
    ]);
    assert.deepEqual(
      await readWhole(vfs, disk, '/boot/firmware/cmdline.txt'),
      Buffer.from('root=/dev/nbd0p2'),
    );
    assert.deepEqual(
      await readWhole(vfs, disk, '/fw/CMDLINE.TXT'),
      Buffer.from('root=/dev/nbd0p2'),
    );
    assert.equal(await readWhole(vfs, disk, '/boot/firmware/hidden'), 'not-found');
    assert.deepEqual(await readWhole(vfs, disk, '/boot/vmlinuz'), Buffer.from('kernel'));
    assert.equal(await readWhole(vfs, disk, '/boot'), 'dir');
  });
}

test('a mountpoint missing in the parent filesystem fails naming mounts[i].mountpoint', async () => {
  await assert.rejects(
    mountMemory(twoPartitionDisk('mbr', fat, ext), [
      { partition: 2, mountpoint: '/' },
      { partition: 1, mountpoint: '/boot/efi' },
    ]),
    { reason: 'mount-failed', message: /mounts\[1\]\.mountpoint \/boot\/efi/ },
  );
});

test('a partition that does not exist, or holds no filesystem we read, fails with its reason', async () => {
  const disk = twoPartitionDisk('gpt', fat, ext);
  await assert.rejects(mountMemory(disk, [{ partition: 3, mountpoint: '/' }]), {
    reason: 'partition-missing',
    message: /partition 3 does not exist \(partitions: 1, 2\)/,
  });
  const xfs = Buffer.alloc(1024 * 1024);
  xfs.write('XFSB', 0, 'latin1');
  await assert.rejects(mountMemory(xfs), { reason: 'unsupported-filesystem', message: /xfs/ });
});
