/**
 * An OpenedFile over a chunk fetcher (one guestfish `pread` per chunk): TFTP asks for
 * 512 B..64 KiB at a time, a pread costs a round trip, so the file is fetched in large
 * chunks with a bounded read-ahead. At most `1 behind + current + readAhead` chunks are
 * held per open file (4 MiB with the 1 MiB default), whatever the file's size; the chunk
 * behind serves a retransmission of the block before a chunk boundary.
 */
import type { OpenedFile } from '../source.ts';

export type ChunkFetcher = (position: number, length: number) => Promise<Buffer>;

export interface ChunkedReaderOptions {
  size: number;
  mtimeMs?: number;
  chunkBytes: number;
  readAhead: number;
  fetch: ChunkFetcher;
  onClose?: () => void;
}

function closedError(): Error {
  return Object.assign(new Error('file is closed'), { code: 'RTFTP_ERR_CLOSED' });
}

export class ChunkedReader implements OpenedFile {
  readonly size: number;
  readonly mtimeMs: number | undefined;
  private readonly chunks = new Map<number, Promise<Buffer>>();
  private closed = false;

  constructor(private readonly opts: ChunkedReaderOptions) {
    this.size = opts.size;
    this.mtimeMs = opts.mtimeMs;
  }

  private chunk(index: number): Promise<Buffer> {
    let p = this.chunks.get(index);
    if (!p) {
      const start = index * this.opts.chunkBytes;
      p = this.opts.fetch(start, Math.min(this.opts.chunkBytes, this.size - start));
      // A failed chunk is dropped so a retry fetches it again; the caller sees the error.
      p.catch(() => this.chunks.delete(index));
      this.chunks.set(index, p);
    }
    return p;
  }

  private prefetchAround(index: number): void {
    for (const held of this.chunks.keys()) {
      if (held < index - 1 || held > index + this.opts.readAhead) this.chunks.delete(held);
    }
    const last = Math.ceil(this.size / this.opts.chunkBytes) - 1;
    for (let i = index + 1; i <= Math.min(last, index + this.opts.readAhead); i++) {
      this.chunk(i).catch(() => undefined); // reported when read
    }
  }

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (this.closed) throw closedError();
    let done = 0;
    while (done < length && position + done < this.size) {
      const at = position + done;
      const index = Math.floor(at / this.opts.chunkBytes);
      const data = await this.chunk(index);
      // A file closed while its read waited (the transfer ended, or HTTP gave up on the
      // read) fetches nothing more: no next chunk, no read-ahead into a closing session.
      if (this.closed) throw closedError();
      this.prefetchAround(index);
      const within = at - index * this.opts.chunkBytes;
      if (within >= data.length) break; // the file shrank on the disk: end here
      const n = data.copy(
        buf,
        offset + done,
        within,
        Math.min(data.length, within + length - done),
      );
      done += n;
    }
    return done;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.chunks.clear();
    this.opts.onClose?.();
  }
}
