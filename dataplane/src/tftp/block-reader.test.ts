import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockReader } from './block-reader.ts';
import type { OpenedFile } from '../sources/source.ts';

/** A file in memory whose reads take a tick and may come back short, counting reads in flight. */
function slowFile(data: Buffer, maxPerRead = Infinity) {
  const stats = { reads: 0, inFlight: 0, maxInFlight: 0 };
  const file: OpenedFile = {
    size: data.length,
    read: async (buf, offset, length, position) => {
      stats.reads++;
      stats.inFlight++;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      await new Promise((r) => setImmediate(r));
      stats.inFlight--;
      return data.copy(
        buf,
        offset,
        position,
        Math.min(data.length, position + Math.min(length, maxPerRead)),
      );
    },
    close: async () => undefined,
  };
  return { file, stats };
}

async function readAll(reader: BlockReader, slots: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let next = 1;
  for (;;) {
    // Like a transfer: ask for a window of blocks, consume them, ask again.
    const r = await reader.readUpTo(next + slots - 1);
    for (let n = next; n <= r.upTo; n++) parts.push(Buffer.from(reader.packet(n).subarray(4)));
    if (r.eof) return Buffer.concat(parts);
    next = r.upTo + 1;
  }
}

const chunk = 65536;
for (const blksize of [512, 1428, 65464]) {
  for (const size of [0, 1, blksize, 3 * blksize, chunk - 1, chunk, chunk + 1, 5 * chunk + 17]) {
    test(`cuts a ${size}-byte file into ${blksize}-byte blocks byte-identically`, async () => {
      const data = Buffer.alloc(size);
      for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) & 255;
      const { file } = slowFile(data, 10_000);
      const out = await readAll(new BlockReader(file, blksize, 4), 4);
      assert.equal(out.length, size);
      assert.ok(out.equals(data));
    });
  }
}

test('the last block is empty when the size is a multiple of blksize', async () => {
  const { file } = slowFile(Buffer.alloc(1024, 1));
  const reader = new BlockReader(file, 512, 4);
  const r = await reader.readUpTo(10);
  assert.deepEqual(r, { upTo: 3, eof: true });
  assert.equal(reader.payloadLength(3), 0);
  assert.equal(reader.packet(3).length, 4);
});

test('reads the next chunk ahead, one read at a time', async () => {
  const { file, stats } = slowFile(Buffer.alloc(10 * chunk, 2));
  const reader = new BlockReader(file, 1024, 2);
  await reader.readUpTo(1);
  // The first chunk is in; the second is already being read.
  assert.equal(stats.reads, 2);
  await readAll(reader, 2);
  assert.equal(stats.maxInFlight, 1);
});

test('block numbers wrap on the wire but not in the reader', async () => {
  const { file } = slowFile(Buffer.alloc(8 * 70_000, 3));
  const reader = new BlockReader(file, 8, 2);
  for (let n = 1; n <= 65_537; n += 2) await reader.readUpTo(n + 1);
  assert.equal(reader.packet(65_537).readUInt16BE(2), 1);
});
