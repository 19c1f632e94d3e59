/**
 * Cuts a file into TFTP blocks with bounded memory: it reads the file sequentially in
 * chunks (one syscall serves many small blocks) and copies each block into its packet
 * slot, where it stays until acknowledged so a retransmission needs no re-read.
 * Memory: two chunks + `slots × (blksize + 4)` bytes, never the file — and none of it
 * before the transfer needs it: a client that has not proven itself yet gets at most block
 * 1, read alone into a buffer of one block (docs/admission.md).
 */
import type { OpenedFile } from '../sources/source.ts';
import { writeDataHeader } from './codec.ts';

const CHUNK_TARGET = 64 * 1024;

/** What a reader needs of a file: positional reads (a netascii view has no size up front). */
export type ReadableFile = Pick<OpenedFile, 'read' | 'close'>;

/** Chunks are whole multiples of blksize, about 64 KiB (one block when blksize is larger). */
function chunkSizeFor(blksize: number): number {
  return Math.max(blksize, Math.floor(CHUNK_TARGET / blksize) * blksize);
}

export class BlockReader {
  /** The window's packet slots and the chunk: allocated on the first read past block 1. */
  private packets: Buffer | undefined;
  private lengths: Int32Array | undefined;
  private chunk: Buffer | undefined;
  /** Block 1 read alone (before the client proved itself), as its DATA packet. */
  private first: Buffer | undefined;
  /** The chunk read ahead into: made only for a file longer than one chunk. */
  private spare: Buffer | undefined;
  /** The read of the chunk after the current one (refills are always sequential). */
  private ahead: Promise<number> | null = null;
  private chunkStart = 0;
  private chunkLen = 0;
  /** Stream offset where the file ended, once seen. */
  private eofAt: number | null = null;
  private nextBlock = 1;
  /** Payload bytes of every block cut so far (each block counted once). */
  bytesRead = 0;

  constructor(
    private readonly file: ReadableFile,
    private readonly blksize: number,
    private readonly slots: number,
  ) {}

  /** The most a reader of these dimensions ever holds: what admission reserves for it. */
  static bufferBytes(blksize: number, slots: number): number {
    return slots * (blksize + 4) + 2 * chunkSizeFor(blksize);
  }

  /** The DATA packet of block `n` (must be buffered and not yet overwritten). */
  packet(n: number): Buffer {
    if (!this.packets) {
      // Only block 1 exists before the window's buffers do.
      writeDataHeader(this.first!, n);
      return this.first!;
    }
    const slot = n % this.slots;
    const start = slot * (this.blksize + 4);
    const p = this.packets.subarray(start, start + 4 + this.lengths![slot]!);
    writeDataHeader(p, n);
    return p;
  }

  payloadLength(n: number): number {
    if (!this.lengths) return this.first!.length - 4;
    return this.lengths[n % this.slots]!;
  }

  /**
   * Fills blocks up to `upTo`; resolves the highest block filled and whether it is the last.
   * Asked for block 1 alone first, it reads just that block, allocating nothing more.
   */
  async readUpTo(upTo: number): Promise<{ upTo: number; eof: boolean }> {
    if (this.nextBlock === 1 && upTo === 1) {
      const block = Buffer.allocUnsafe(this.blksize + 4);
      const len = await this.fill(block.subarray(4), 0);
      this.first = block.subarray(0, 4 + len);
      this.bytesRead += len;
      this.nextBlock = 2;
      return { upTo: 1, eof: len < this.blksize };
    }
    if (!this.packets) {
      this.packets = Buffer.allocUnsafe(this.slots * (this.blksize + 4));
      this.lengths = new Int32Array(this.slots);
      this.chunk = Buffer.allocUnsafe(chunkSizeFor(this.blksize));
      this.first = undefined;
    }
    const packets = this.packets;
    const lengths = this.lengths!;
    while (this.nextBlock <= upTo) {
      const n = this.nextBlock;
      const offset = (n - 1) * this.blksize;
      const chunkEnd = this.chunkStart + this.chunkLen;
      if (offset + this.blksize > chunkEnd && (this.eofAt === null || offset < this.eofAt)) {
        if (this.eofAt === null || chunkEnd < this.eofAt) await this.refill(offset);
      }
      const available = Math.min(this.chunkStart + this.chunkLen, this.eofAt ?? Infinity) - offset;
      const len = Math.max(0, Math.min(this.blksize, available));
      const slot = n % this.slots;
      this.chunk!.copy(
        packets,
        slot * (this.blksize + 4) + 4,
        offset - this.chunkStart,
        offset - this.chunkStart + len,
      );
      lengths[slot] = len;
      this.bytesRead += len;
      this.nextBlock = n + 1;
      if (len < this.blksize) return { upTo: n, eof: true };
    }
    return { upTo, eof: false };
  }

  /**
   * Makes the chunk that starts at `offset` current. Chunks are whole multiples of
   * blksize and only a short read at end of file ends one early, so refills always start
   * where the previous chunk ended. While the transfer consumes one chunk the next is
   * already being read (double buffering): a disk or NBD round trip overlaps the sending.
   */
  private async refill(offset: number): Promise<void> {
    let len: number;
    if (this.ahead) {
      len = await this.ahead;
      [this.chunk, this.spare] = [this.spare!, this.chunk];
    } else len = await this.fill(this.chunk!, offset);
    this.ahead = null;
    this.chunkStart = offset;
    this.chunkLen = len;
    const chunk = this.chunk!;
    if (len < chunk.length) {
      this.eofAt = offset + len;
    } else {
      this.spare ??= Buffer.allocUnsafe(chunk.length);
      this.ahead = this.fill(this.spare, offset + len);
      // A failed read-ahead surfaces when the transfer reaches it, not as an unhandled rejection.
      this.ahead.catch(() => undefined);
    }
  }

  /** Reads `buf` full from `offset`; fewer bytes only at end of file. */
  private async fill(buf: Buffer, offset: number): Promise<number> {
    let have = 0;
    while (have < buf.length) {
      const got = await this.file.read(buf, have, buf.length - have, offset + have);
      if (got <= 0) break;
      have += got;
    }
    return have;
  }
}
