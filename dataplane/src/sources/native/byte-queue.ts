/**
 * Bytes received from a socket, consumed in exact-size pieces. Keeps the received chunks
 * as they are and copies only when a piece spans chunks.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  length = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Removes and returns the first `n` bytes; the caller checks `length >= n` first. */
  take(n: number): Buffer {
    if (n > this.length) throw new RangeError(`ByteQueue: ${n} > ${this.length}`);
    if (n === 0) return Buffer.alloc(0);
    this.length -= n;
    const first = this.chunks[0]!;
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) this.shift();
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length - this.head, n - filled);
      c.copy(out, filled, this.head, this.head + k);
      filled += k;
      this.head += k;
      if (this.head === c.length) this.shift();
    }
    return out;
  }

  private shift(): void {
    this.chunks.shift();
    this.head = 0;
  }
}
