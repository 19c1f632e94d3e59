/**
 * netascii (RFC 764 as used by RFC 1350): LF → CR LF, CR → CR NUL. The conversion is
 * applied as a stream while the transfer reads, so memory stays bounded and the first
 * block leaves after one small read, whatever the file's size (local or on an NBD disk).
 *
 * The converted size is known only by reading the whole file, so it is counted only
 * when the client asks for `tsize` — and only for files up to {@link NETASCII_TSIZE_LIMIT}:
 * the count happens before the client has proven it exists (the size goes in the OACK),
 * and a spoofed request must not buy a read of a large file. Past the limit the option
 * is not acknowledged (RFC 2347 lets a server leave out any option).
 */
import type { OpenedFile } from '../sources/source.ts';

const CR = 0x0d;
const LF = 0x0a;
const SCAN_CHUNK = 64 * 1024;

/** Largest file (raw bytes) whose converted size is counted for tsize. */
export const NETASCII_TSIZE_LIMIT = 1024 * 1024;

/** The most a {@link NetasciiFile} holds: a raw chunk and its expansion (up to twice as big). */
export const NETASCII_BUFFER_BYTES = 3 * SCAN_CHUNK;

/**
 * Size of the file after conversion (every CR and LF adds one byte), or null when the
 * file is larger than `limit` raw bytes (then nothing past the limit is read).
 */
export async function netasciiSize(
  file: OpenedFile,
  limit = NETASCII_TSIZE_LIMIT,
): Promise<number | null> {
  if (file.size > limit) return null;
  const buf = Buffer.allocUnsafe(Math.min(SCAN_CHUNK, limit + 1));
  let pos = 0;
  let extra = 0;
  for (;;) {
    const got = await file.read(buf, 0, buf.length, pos);
    if (got <= 0) break;
    for (let i = 0; i < got; i++) {
      const c = buf[i];
      if (c === CR || c === LF) extra++;
    }
    pos += got;
    // The file grew past the limit since it was opened.
    if (pos > limit) return null;
  }
  return pos + extra;
}

/**
 * A converted view of `file`. Reads must be sequential (the transfer reads the file
 * front to back exactly once). Its buffers are made on the first read and sized to it:
 * block 1 read alone (an unproven client) costs a block, not a chunk.
 */
export class NetasciiFile implements Pick<OpenedFile, 'read' | 'close'> {
  private rawPos = 0;
  private outPos = 0;
  private raw: Buffer | undefined;
  /** Converted bytes produced but not yet handed out (at most one expanded raw read). */
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly inner: OpenedFile) {}

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (position !== this.outPos)
      throw new Error(`netascii reads are sequential (asked ${position}, at ${this.outPos})`);
    let written = 0;
    while (written < length) {
      if (this.pending.length === 0) {
        const want = Math.min(SCAN_CHUNK, length - written);
        if (!this.raw || this.raw.length < want) this.raw = Buffer.allocUnsafe(want);
        const got = await this.inner.read(this.raw, 0, want, this.rawPos);
        if (got <= 0) break;
        this.rawPos += got;
        this.pending = convert(this.raw.subarray(0, got));
      }
      const n = Math.min(length - written, this.pending.length);
      this.pending.copy(buf, offset + written, 0, n);
      this.pending = this.pending.subarray(n);
      written += n;
    }
    this.outPos += written;
    return written;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export function convert(input: Buffer): Buffer {
  let extra = 0;
  for (let i = 0; i < input.length; i++) if (input[i] === CR || input[i] === LF) extra++;
  if (extra === 0) return Buffer.from(input);
  const out = Buffer.allocUnsafe(input.length + extra);
  let o = 0;
  for (let i = 0; i < input.length; i++) {
    const c = input[i]!;
    if (c === LF) {
      out[o++] = CR;
      out[o++] = LF;
    } else if (c === CR) {
      out[o++] = CR;
      out[o++] = 0;
    } else out[o++] = c;
  }
  return out;
}
