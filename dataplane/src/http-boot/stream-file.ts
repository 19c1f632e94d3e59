/**
 * Streams a byte range of an OpenedFile into a writable (the HTTP response) with bounded
 * memory and backpressure: two buffers of `chunkBytes`, one being written while the next
 * is read. A buffer is read into again only once the writable has handed it to the
 * kernel (its write callback), and no read starts while the writable says it is full, so
 * a client that reads slowly holds at most these two buffers, however slow it is and
 * however large the file. The source is read positionally (pread), in order.
 *
 * Each chunk is handed over in slices of `sliceBytes`, each with its own callback: a slice
 * taken by the kernel is progress, so a client that reads slowly but steadily (1 KiB/s)
 * is told apart from one that stopped, long before a whole chunk has gone through.
 */
import type { OpenedFile } from '../sources/source.ts';

/** What streaming needs of a writable: Node's ServerResponse is one. */
export interface ByteSink {
  write(chunk: Buffer, callback: (err?: Error | null) => void): boolean;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
  readonly destroyed: boolean;
}

export class SinkClosedError extends Error {
  readonly code = 'RTFTP_ERR_HTTP_CLIENT_GONE';
}

/** Bytes a stream holds for its whole life: what admission reserves for it. */
export function streamBufferBytes(chunkBytes: number): number {
  return 2 * chunkBytes;
}

/** Resolves when `sink` can take more, rejects when it closes first. */
function drained(sink: ByteSink): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      sink.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      sink.off('drain', onDrain);
      reject(new SinkClosedError('client closed the connection'));
    };
    sink.once('drain', onDrain);
    sink.once('close', onClose);
  });
}

export interface StreamOptions {
  chunkBytes: number;
  sliceBytes: number;
  /** Told each slice the kernel took (stall detection). */
  onProgress?: (bytes: number) => void;
}

/**
 * Writes bytes [start, end) of `file` to `sink`; resolves the count written (handed to
 * the writable). Rejects with SinkClosedError when the client goes away, or with the
 * source's error when a read fails (a disk that vanished): the caller ends the response.
 */
export async function streamRange(
  file: OpenedFile,
  sink: ByteSink,
  start: number,
  end: number,
  { chunkBytes, sliceBytes, onProgress }: StreamOptions,
): Promise<number> {
  const buffers = [Buffer.allocUnsafe(chunkBytes), Buffer.allocUnsafe(chunkBytes)];
  // Resolves when the buffer is free again (its last write was handed to the kernel).
  const free: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
  const readChunk = async (i: number, at: number): Promise<Buffer> => {
    await free[i];
    const want = Math.min(chunkBytes, end - at);
    let got = 0;
    while (got < want) {
      const n = await file.read(buffers[i]!, got, want - got, at + got);
      if (n === 0) break; // the file shrank since it was opened: send what there is
      got += n;
    }
    return buffers[i]!.subarray(0, got);
  };
  let written = 0;
  let at = start;
  let i = 0;
  let next: Promise<Buffer> | null = at < end ? readChunk(i, at) : null;
  while (next) {
    const chunk = await next;
    if (sink.destroyed) throw new SinkClosedError('client closed the connection');
    if (chunk.length === 0) break;
    at += chunk.length;
    let handed: () => void = () => undefined;
    free[i] = new Promise<void>((resolve) => (handed = resolve));
    let more = true;
    for (let off = 0; off < chunk.length; off += sliceBytes) {
      const slice = chunk.subarray(off, off + sliceBytes);
      const last = off + sliceBytes >= chunk.length;
      more = sink.write(slice, () => {
        onProgress?.(slice.length);
        if (last) handed();
      });
    }
    written += chunk.length;
    i = 1 - i;
    // Read the next chunk into the other buffer while this one is being sent, unless
    // the client is not keeping up: then nothing more is read until it drains.
    if (!more) await drained(sink);
    next = at < end ? readChunk(i, at) : null;
  }
  return written;
}
