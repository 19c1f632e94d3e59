import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CachedDisk } from './block-cache.ts';
import { mbrSector, memoryDisk, writeGpt } from './memory-images.ts';
import { readPartitionTable } from './partition-table.ts';

const MIB_SECTORS = 2048;

function table(buf: Buffer) {
  const disk = new CachedDisk(memoryDisk(buf));
  return readPartitionTable(disk, disk.begin());
}

function ebr(
  logical: { start: number; sectors: number },
  next: number | null,
  nextSectors = 0,
): Buffer {
  return mbrSector([
    { start: logical.start, sectors: logical.sectors },
    next === null ? null : { start: next, sectors: nextSectors, type: 0x05 },
  ]);
}

test('numbers MBR primaries by slot and logical partitions from 5 in chain order', async () => {
  const disk = Buffer.alloc(16 * 1024 * 1024);
  mbrSector([
    { start: MIB_SECTORS, sectors: MIB_SECTORS },
    null,
    { start: 3 * MIB_SECTORS, sectors: 12 * MIB_SECTORS, type: 0x0f },
  ]).copy(disk, 0);
  // EBR 1 at the start of the extended partition, EBR 2 four MiB further.
  ebr({ start: 2048, sectors: MIB_SECTORS }, 4 * MIB_SECTORS, 3 * MIB_SECTORS).copy(
    disk,
    3 * MIB_SECTORS * 512,
  );
  ebr({ start: 2048, sectors: MIB_SECTORS }, null).copy(disk, 7 * MIB_SECTORS * 512);
  const parts = await table(disk);
  assert.deepEqual(
    parts.map((p) => [p.number, p.start / 512, p.size / 512, p.extended]),
    [
      [1, MIB_SECTORS, MIB_SECTORS, false],
      [3, 3 * MIB_SECTORS, 12 * MIB_SECTORS, true],
      [5, 3 * MIB_SECTORS + 2048, MIB_SECTORS, false],
      [6, 7 * MIB_SECTORS + 2048, MIB_SECTORS, false],
    ],
  );
});

test('refuses an EBR chain that loops back on itself', async () => {
  const disk = Buffer.alloc(8 * 1024 * 1024);
  mbrSector([{ start: MIB_SECTORS, sectors: 6 * MIB_SECTORS, type: 0x05 }]).copy(disk, 0);
  ebr({ start: 2048, sectors: 1024 }, 0, 4096).copy(disk, MIB_SECTORS * 512);
  await assert.rejects(table(disk), { code: 'RTFTP_ERR_NATIVE_CORRUPT', message: /loops/ });
});

test('refuses overlapping and out-of-disk partitions', async () => {
  const disk = Buffer.alloc(4 * 1024 * 1024);
  mbrSector([
    { start: 2048, sectors: 4096 },
    { start: 4096, sectors: 1024 },
  ]).copy(disk, 0);
  await assert.rejects(table(disk), { reason: 'corrupt', message: /overlap/ });
  mbrSector([{ start: 2048, sectors: 1 << 30 }]).copy(disk, 0);
  await assert.rejects(table(disk), { reason: 'corrupt', message: /outside/ });
});

test('reads GPT entries by slot and checks both CRCs, falling back to no table without 55AA', async () => {
  const disk = Buffer.alloc(8 * 1024 * 1024);
  writeGpt(disk, [{ start: 2048, sectors: 2048 }, null, { start: 6144, sectors: 4096 }]);
  const parts = await table(disk);
  assert.deepEqual(
    parts.map((p) => [p.number, p.start, p.size, p.scheme]),
    [
      [1, 2048 * 512, 2048 * 512, 'gpt'],
      [3, 6144 * 512, 4096 * 512, 'gpt'],
    ],
  );
  disk[2 * 512 + 40] = disk[2 * 512 + 40]! ^ 1; // an entry byte: the entries CRC no longer matches
  await assert.rejects(table(disk), { code: 'RTFTP_ERR_NATIVE_CORRUPT', message: /CRC/ });
  assert.deepEqual(await table(Buffer.alloc(1024 * 1024)), []);
});
