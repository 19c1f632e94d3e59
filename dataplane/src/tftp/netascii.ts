/**
 * netascii (RFC 764 as used by RFC 1350): LF → CR LF, CR → CR NUL. The conversion is
 * applied as a stream over the file, so memory stays bounded, and the converted size
 * (what tsize must report) is counted by one streaming pass.
 */
import type { OpenedFile } from '../sources/source.ts';

const CR = 0x0d;
const LF = 0x0a;
const SCAN_CHUNK = 64 * 1024;

/** Size of the file after conversion: every CR and LF adds one byte. */
export async function netasciiSize(file: OpenedFile): Promise<number> {
  const buf = Buffer.allocUnsafe(SCAN_CHUNK);
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
  }
  return pos + extra;
}

/**
 * A converted view of `file`. Reads must be sequential (the transfer reads the file
 * front to back exactly once); the size is the converted size when known.
 */
export class NetasciiFile implements OpenedFile {
  private rawPos = 0;
  private outPos = 0;
  private readonly raw = Buffer.allocUnsafe(SCAN_CHUNK);
  /** Converted bytes produced but not yet handed out (at most one expanded chunk). */
  private pending: Buffer = Buffer.alloc(0);

  constructor(
    private readonly inner: OpenedFile,
    readonly size: number,
  ) {}

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (position !== this.outPos)
      throw new Error(`netascii reads are sequential (asked ${position}, at ${this.outPos})`);
    let written = 0;
    while (written < length) {
      if (this.pending.length === 0) {
        const got = await this.inner.read(this.raw, 0, this.raw.length, this.rawPos);
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
