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
  const f = new NetasciiFile(memoryFile(raw), size);
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
  const f = new NetasciiFile(memoryFile(Buffer.from('abc')), 3);
  await assert.rejects(f.read(Buffer.alloc(3), 0, 3, 1));
});
