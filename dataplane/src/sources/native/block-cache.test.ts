import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CachedDisk, PAGE_SIZE } from './block-cache.ts';
import { memoryDisk } from './memory-images.ts';

test('keeps the cache within its byte budget, evicting the least recently used page', async () => {
  const buf = Buffer.alloc(PAGE_SIZE * 8);
  const disk = new CachedDisk(memoryDisk(buf), PAGE_SIZE * 2);
  const e = disk.begin();
  await disk.read(0, 10, e);
  await disk.read(PAGE_SIZE, 10, e);
  await disk.read(0, 10, e); // page 0 is now the most recent
  await disk.read(PAGE_SIZE * 2, 10, e); // evicts page 1
  assert.equal(disk.cachedByteCount, PAGE_SIZE * 2);
  const misses = disk.stats.misses;
  await disk.read(0, 10, e);
  assert.equal(disk.stats.misses, misses, 'page 0 stayed cached');
  await disk.read(PAGE_SIZE, 10, e);
  assert.equal(disk.stats.misses, misses + 1, 'page 1 was evicted');
});

test('a read with a newer epoch sees bytes written after the page was cached', async () => {
  const buf = Buffer.alloc(PAGE_SIZE * 2);
  const disk = new CachedDisk(memoryDisk(buf));
  const old = disk.begin();
  assert.equal((await disk.read(100, 3, old)).toString(), '\0\0\0');
  buf.write('new', 100);
  assert.equal((await disk.read(100, 3, old)).toString(), '\0\0\0', 'same epoch: cached');
  assert.equal((await disk.read(100, 3, disk.begin())).toString(), 'new');
});

test('merges concurrent reads of one page into one fetch and spans pages', async () => {
  const buf = Buffer.from(Array.from({ length: PAGE_SIZE * 3 }, (_, i) => i & 0xff));
  let fetches = 0;
  const raw = memoryDisk(buf);
  const disk = new CachedDisk({ ...raw, read: (o, l) => (fetches++, raw.read(o, l)) });
  const e = disk.begin();
  await Promise.all([disk.read(5, 5, e), disk.read(50, 5, e), disk.read(500, 5, e)]);
  assert.equal(fetches, 1);
  const span = await disk.read(PAGE_SIZE - 2, 4, e);
  assert.deepEqual(span, buf.subarray(PAGE_SIZE - 2, PAGE_SIZE + 2));
  await assert.rejects(disk.read(buf.length - 1, 2, e), { reason: 'corrupt' });
});
