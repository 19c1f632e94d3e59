import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockReader } from './block-reader.ts';
import type { OpenedFile } from '../sources/source.ts';

/** A file in memory whose reads take a tick and may come back short, counting reads in flight. */
function slowFile(data: Buffer, maxPerRead = Infinity) {
  const stats = { reads: 0, inFlight: 0, maxInFlight: 0, maxLength: 0 };
  const file: OpenedFile = {
    size: data.length,
    read: async (buf, offset, length, position) => {
      stats.reads++;
      stats.maxLength = Math.max(stats.maxLength, length);
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

async function readAll(reader: BlockReader, slots: number, next = 1): Promise<Buffer> {
  const parts: Buffer[] = [];
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
      // As an unproven transfer reads: block 1 alone, then (once proven) the rest.
      const lazy = new BlockReader(slowFile(data, 10_000).file, blksize, 4);
      const first = await lazy.readUpTo(1);
      const head = Buffer.from(lazy.packet(1).subarray(4));
      const rest = first.eof ? Buffer.alloc(0) : await readAll(lazy, 4, 2);
      assert.ok(Buffer.concat([head, rest]).equals(data));
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
  await reader.readUpTo(2);
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

test('block 1 alone is read alone: one read of one block, nothing allocated ahead', async () => {
  const { file, stats } = slowFile(Buffer.alloc(10 * chunk, 4));
  const reader = new BlockReader(file, 1428, 32);
  assert.deepEqual(await reader.readUpTo(1), { upTo: 1, eof: false });
  assert.deepEqual([stats.reads, stats.maxLength], [1, 1428]);
  assert.equal(reader.packet(1).length, 1432);
  await reader.readUpTo(33);
  assert.ok(stats.maxLength > 1428, 'the chunked reads start once more than block 1 is asked');
});

test('bufferBytes is what the window and the two chunks hold', () => {
  assert.equal(BlockReader.bufferBytes(512, 2), 2 * 516 + 2 * 65536);
  assert.equal(BlockReader.bufferBytes(65464, 32), 32 * 65468 + 2 * 65464);
});
