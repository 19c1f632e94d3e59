/**
 * The transmission phase's receive side: simple replies matched to the reads waiting for
 * them, each payload copied straight from the socket's receive buffer into its reader's
 * buffer, and one deadline timer for all of them.
 */
import type { DiskError } from '../disk-session.ts';
import { NativeErrorCode, diskError } from './errors.ts';
import { NBD_SIMPLE_REPLY_MAGIC } from './nbd-protocol.ts';

export interface PendingRead {
  dst: Buffer;
  dstOffset: number;
  length: number;
  offset: number;
  timeoutMs: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

interface Expected extends PendingRead {
  /** performance.now() after which the read has timed out. */
  deadline: number;
}

const REPLY_HEADER_BYTES = 16;

export class ReplyMatcher {
  /** In the order sent: the first one is the oldest (the next to time out). */
  private readonly pending = new Map<number, Expected>();
  private current: { read: Expected; filled: number } | null = null;
  private readonly header = Buffer.alloc(REPLY_HEADER_BYTES);
  private headerFilled = 0;
  private watchdog: NodeJS.Timeout | null = null;
  private failed = false;

  constructor(
    private readonly where: string,
    /** A timeout or a protocol violation: the connection is not trusted any more. */
    private readonly onFatal: (err: DiskError) => void,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  expect(handle: number, read: PendingRead): void {
    this.pending.set(handle, { ...read, deadline: performance.now() + read.timeoutMs });
    this.watchdog ??= setTimeout(() => this.checkDeadlines(), read.timeoutMs);
  }

  /**
   * One timer per connection, not one per read: it fires at the oldest read's deadline.
   * A server that stops answering one read is not trusted with the others.
   */
  private checkDeadlines(): void {
    this.watchdog = null;
    const oldest = this.pending.values().next();
    if (oldest.done || this.failed) return;
    const left = oldest.value.deadline - performance.now();
    if (left > 0) {
      this.watchdog = setTimeout(() => this.checkDeadlines(), Math.ceil(left));
      return;
    }
    const { length, offset, timeoutMs } = oldest.value;
    this.onFatal(
      diskError(
        NativeErrorCode.Timeout,
        'timeout',
        `${this.where}: no reply to a read of ${length} bytes at ${offset} within ${timeoutMs} ms`,
      ),
    );
  }

  /** Reply headers and payloads in `buf[0, n)`, used before this returns (`buf` is reused). */
  received(buf: Buffer, n: number): void {
    let at = 0;
    while (at < n && !this.failed) {
      const c = this.current;
      if (c) {
        const k = Math.min(n - at, c.read.length - c.filled);
        buf.copy(c.read.dst, c.read.dstOffset + c.filled, at, at + k);
        c.filled += k;
        at += k;
        if (c.filled === c.read.length) {
          this.current = null;
          c.read.resolve();
        }
        continue;
      }
      const k = Math.min(n - at, REPLY_HEADER_BYTES - this.headerFilled);
      buf.copy(this.header, this.headerFilled, at, at + k);
      this.headerFilled += k;
      at += k;
      if (this.headerFilled < REPLY_HEADER_BYTES) return;
      this.headerFilled = 0;
      this.onReplyHeader(this.header);
    }
  }

  private onReplyHeader(head: Buffer): void {
    if (head.readUInt32BE(0) !== NBD_SIMPLE_REPLY_MAGIC) {
      return this.onFatal(
        this.protocolError('unexpected reply magic (structured replies were not negotiated)'),
      );
    }
    const error = head.readUInt32BE(4);
    const handle = head.readUInt32BE(12);
    const read = this.pending.get(handle);
    if (!read || head.readUInt32BE(8) !== 0)
      return this.onFatal(this.protocolError(`reply to unknown handle ${handle}`));
    this.pending.delete(handle);
    if (this.pending.size === 0 && this.watchdog) {
      clearTimeout(this.watchdog);
      this.watchdog = null;
    }
    if (error !== 0) {
      read.reject(
        diskError(
          NativeErrorCode.ReadFailed,
          'other',
          `${this.where}: the server failed a read (errno ${error})`,
        ),
      );
      return;
    }
    if (read.length === 0) read.resolve();
    else this.current = { read, filled: 0 };
  }

  private protocolError(what: string): DiskError {
    return diskError(NativeErrorCode.Handshake, 'other', `${this.where}: ${what}`);
  }

  /** Fails every read still waiting; nothing more is accepted. */
  failAll(err: DiskError): void {
    this.failed = true;
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.current?.read.reject(err);
    this.current = null;
  }
}
