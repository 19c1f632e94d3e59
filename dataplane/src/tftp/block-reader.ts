/**
 * Cuts a file into TFTP blocks with bounded memory: it reads the file sequentially in
 * chunks (one syscall serves many small blocks) and copies each block into its packet
 * slot, header included, where it stays until acknowledged so a retransmission needs no
 * re-read. Sending a block allocates nothing: each slot's full-size packet is a view made
 * once (only a short last block gets a view of its own).
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
  /** Each slot's full-size DATA packet, as a view of `packets`. */
  private views: Buffer[] = [];
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
    // Only block 1 exists before the window's buffers do.
    if (!this.packets) return this.first!;
    const slot = n % this.slots;
    const len = this.lengths![slot]!;
    if (len === this.blksize) return this.views[slot]!;
    const start = slot * (this.blksize + 4);
    return this.packets.subarray(start, start + 4 + len);
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
      writeDataHeader(block, 1);
      this.first = block.subarray(0, 4 + len);
      this.bytesRead += len;
      this.nextBlock = 2;
      return { upTo: 1, eof: len < this.blksize };
    }
    if (!this.packets) {
      const packets = Buffer.allocUnsafe(this.slots * (this.blksize + 4));
      this.packets = packets;
      this.lengths = new Int32Array(this.slots);
      const size = this.blksize + 4;
      this.views = Array.from({ length: this.slots }, (_, i) =>
        packets.subarray(i * size, (i + 1) * size),
      );
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
      const at = slot * (this.blksize + 4);
      writeDataHeader(this.views[slot]!, n);
      this.chunk!.copy(packets, at + 4, offset - this.chunkStart, offset - this.chunkStart + len);
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
