import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFat12 } from './memory-images.ts';
import { mountMemory, readWhole } from './test-mount.ts';
import { fatWriteTimeMs } from './fat.ts';

const kernel = Buffer.alloc(5000, 7).fill(9, 4000);
const image = () =>
  buildFat12([
    { path: 'config.txt', content: Buffer.from('kernel=Kernel Image v8.img\n') },
    { path: 'Kernel Image v8.img', content: kernel },
    { path: 'overlays/A Very Long Overlay Name.dtbo', content: Buffer.from('dtbo') },
    { path: 'empty', content: Buffer.alloc(0) },
  ]);

test('lists FAT12 long names and reads files across clusters', async () => {
  const { vfs, disk } = await mountMemory(image());
  const tree = await vfs.walk(disk.begin());
  assert.deepEqual(
    tree.map((e) => [e.path, e.kind, e.size]),
    [
      ['/config.txt', 'file', 27],
      ['/Kernel Image v8.img', 'file', 5000],
      ['/overlays', 'dir', 0],
      ['/overlays/A Very Long Overlay Name.dtbo', 'file', 4],
      ['/empty', 'file', 0],
    ],
  );
  assert.deepEqual(await readWhole(vfs, disk, '/Kernel Image v8.img'), kernel);
  assert.deepEqual(await readWhole(vfs, disk, '/empty'), Buffer.alloc(0));
});

test('looks FAT names up case-insensitively', async () => {
  const { vfs, disk } = await mountMemory(image());
  assert.deepEqual(
    await readWhole(vfs, disk, '/CONFIG.TXT'),
    Buffer.from('kernel=Kernel Image v8.img\n'),
  );
  assert.deepEqual(
    await readWhole(vfs, disk, '/OVERLAYS/a very long overlay name.DTBO'),
    Buffer.from('dtbo'),
  );
  assert.equal(await readWhole(vfs, disk, '/nope.txt'), 'not-found');
});

test('a FAT chain that loops fails as a corrupt disk, in bounded work', async () => {
  const img = image();
  // The kernel starts at cluster 3 (config.txt has cluster 2); point its 5th cluster back at 3.
  const fat = 512;
  const n = 7;
  const at = fat + Math.floor(n * 1.5);
  const old = img.readUInt16LE(at);
  img.writeUInt16LE(n & 1 ? (old & 0x000f) | (3 << 4) : (old & 0xf000) | 3, at);
  const { vfs, disk } = await mountMemory(img);
  await assert.rejects(readWhole(vfs, disk, '/Kernel Image v8.img'), { reason: 'corrupt' });
});

test('a FAT entry’s write date and time are its mtime (read as UTC); date 0 is none', async () => {
  const e = Buffer.alloc(32);
  // 2024-02-29 13:37:58: date (44 << 9 | 2 << 5 | 29), time (13 << 11 | 37 << 5 | 29).
  e.writeUInt16LE((13 << 11) | (37 << 5) | 29, 22);
  e.writeUInt16LE((44 << 9) | (2 << 5) | 29, 24);
  assert.equal(fatWriteTimeMs(e), Date.UTC(2024, 1, 29, 13, 37, 58));
  assert.equal(fatWriteTimeMs(Buffer.alloc(32)), undefined);
  e.writeUInt16LE((44 << 9) | (13 << 5) | 1, 24);
  assert.equal(fatWriteTimeMs(e), undefined, 'month 13');
  const { vfs, disk } = await mountMemory(image());
  const r = await vfs.resolve('/config.txt', disk.begin());
  assert.ok(r.status === 'found');
  assert.equal(r.node.mtimeMs, fatWriteTimeMs(Buffer.alloc(32)));
});
