import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NetasciiFile, convert, netasciiSize } from './netascii.ts';
import type { OpenedFile } from '../sources/source.ts';

function memoryFile(data: Buffer): OpenedFile {
  return {
    size: data.length,
    read: async (buf, offset, length, position) =>
      data.copy(buf, offset, position, Math.min(data.length, position + length)),
    close: async () => undefined,
  };
}

test('converts LF to CR LF and CR to CR NUL', () => {
  assert.deepEqual(
    convert(Buffer.from('a\nb\rc\r\n')),
    Buffer.from('a\r\nb\r\0c\r\0\r\n', 'latin1'),
  );
});

test('the converted size counts every expansion, and streaming gives the same bytes', async () => {
  const raw = Buffer.alloc(200_000);
  for (let i = 0; i < raw.length; i++) raw[i] = [0x0a, 0x0d, 0x41, 0x42][(i * 7) % 4]!;
  const size = await netasciiSize(memoryFile(raw));
  const expected = convert(raw);
  assert.equal(size, expected.length);
  const f = new NetasciiFile(memoryFile(raw));
  const out = Buffer.alloc(size + 10);
  let pos = 0;
  for (;;) {
    const got = await f.read(out, pos, 1000, pos);
    if (got === 0) break;
    pos += got;
  }
  assert.equal(pos, size);
  assert.deepEqual(out.subarray(0, pos), expected);
});

test('refuses non-sequential reads rather than serving wrong bytes', async () => {
  const f = new NetasciiFile(memoryFile(Buffer.from('abc')));
  await assert.rejects(f.read(Buffer.alloc(3), 0, 3, 1));
});

/** A file of `size` bytes of text that exists only as it is read, counting the reads. */
function endlessText(size: number) {
  const stats = { reads: 0, bytes: 0 };
  const line = Buffer.from('kernel /vmlinuz root=/dev/nbd0\n');
  const file: OpenedFile = {
    size,
    read: async (buf, offset, length, position) => {
      const n = Math.max(0, Math.min(length, size - position));
      for (let i = 0; i < n; i++) buf[offset + i] = line[(position + i) % line.length]!;
      stats.reads++;
      stats.bytes += n;
      return n;
    },
    close: async () => undefined,
  };
  return { file, stats };
}

test('the first block of a 256 MiB file costs one read of one block, not a pass over the file', async () => {
  const { file, stats } = endlessText(256 * 1024 * 1024);
  const f = new NetasciiFile(file);
  const block = Buffer.alloc(512);
  assert.equal(await f.read(block, 0, 512, 0), 512);
  assert.deepEqual(stats, { reads: 1, bytes: 512 });
});

test('the converted size is counted up to the limit; a larger file is not read at all', async () => {
  const small = endlessText(1000);
  const content = Buffer.alloc(1000);
  await small.file.read(content, 0, 1000, 0);
  assert.equal(await netasciiSize(small.file, 1000), convert(content).length);
  const big = endlessText(1001);
  assert.equal(await netasciiSize(big.file, 1000), null);
  assert.equal(big.stats.reads, 0);
});

test('a file that grew past the limit since it was opened is not counted', async () => {
  const grown = endlessText(5000);
  const file = { ...grown.file, size: 10 };
  assert.equal(await netasciiSize(file, 1000), null);
  assert.equal(grown.stats.bytes, 1001, 'reading stops one byte past the limit');
});
