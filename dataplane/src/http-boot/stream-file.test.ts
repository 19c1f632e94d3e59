import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { OpenedFile } from '../sources/source.ts';
import { SinkClosedError, streamRange } from './stream-file.ts';

function memoryFile(data: Buffer, onRead?: (n: number) => void): OpenedFile {
  return {
    size: data.length,
    read: async (buf, offset, length, position) => {
      await new Promise((r) => setImmediate(r));
      const n = data.copy(buf, offset, position, Math.min(data.length, position + length));
      onRead?.(n);
      return n;
    },
    close: async () => undefined,
  };
}

/** A writable that takes one write per `everyMs` (a slow client), keeping what it got. */
function slowSink(everyMs: number) {
  const got: Buffer[] = [];
  let taken = 0;
  const sink = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, cb) {
      setTimeout(() => {
        got.push(Buffer.from(chunk));
        taken += chunk.length;
        cb();
      }, everyMs);
    },
  });
  return { sink, got, taken: () => taken };
}

test('a slow reader holds at most two chunks: nothing more is read than it has taken plus two', async () => {
  const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 256));
  const chunk = 8192;
  const { sink, got, taken } = slowSink(1);
  let read = 0;
  let worst = 0;
  const file = memoryFile(data, (n) => {
    read += n;
    worst = Math.max(worst, read - taken());
  });
  const written = await streamRange(file, sink, 0, data.length, {
    chunkBytes: chunk,
    sliceBytes: 1024,
  });
  assert.equal(written, data.length);
  await new Promise((r) => sink.end(r));
  assert.deepEqual(Buffer.concat(got), data);
  assert.ok(worst <= 2 * chunk, `read ${worst} bytes ahead of the client (bound ${2 * chunk})`);
});

test('a range is sent exactly; progress is reported per slice', async () => {
  const data = Buffer.from(Array.from({ length: 50_000 }, (_, i) => i % 251));
  const { sink, got } = slowSink(0);
  const slices: number[] = [];
  await streamRange(memoryFile(data), sink, 1234, 45_678, {
    chunkBytes: 4096,
    sliceBytes: 1000,
    onProgress: (n) => slices.push(n),
  });
  await new Promise((r) => sink.end(r));
  assert.deepEqual(Buffer.concat(got), data.subarray(1234, 45_678));
  assert.ok(slices.every((n) => n <= 1000) && slices.length >= 44);
});

test('a client that goes away ends the stream with SinkClosedError, reading no more', async () => {
  const data = Buffer.alloc(1 << 20, 1);
  const { sink } = slowSink(5);
  let read = 0;
  const file = memoryFile(data, (n) => (read += n));
  setTimeout(() => sink.destroy(), 30);
  await assert.rejects(
    streamRange(file, sink, 0, data.length, { chunkBytes: 16384, sliceBytes: 4096 }),
    SinkClosedError,
  );
  const after = read;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(read, after);
  assert.ok(read < data.length);
});

test('a source that fails mid-stream rejects with its error', async () => {
  const data = Buffer.alloc(100_000, 2);
  const file = memoryFile(data);
  const failing: OpenedFile = {
    ...file,
    read: async (buf, off, len, pos) => {
      if (pos >= 50_000) throw Object.assign(new Error('disk gone'), { code: 'RTFTP_ERR_X' });
      return file.read(buf, off, len, pos);
    },
  };
  const { sink } = slowSink(0);
  await assert.rejects(
    streamRange(failing, sink, 0, data.length, { chunkBytes: 10_000, sliceBytes: 5000 }),
    /disk gone/,
  );
});
