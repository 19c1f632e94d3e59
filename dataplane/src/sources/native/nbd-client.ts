/**
 * A read-only NBD disk over one connection, with a bounded number of reads in flight and
 * reconnection with backoff when the connection drops. A read either resolves with all
 * its bytes or rejects with a DiskError within `readTimeoutMs` (plus reconnect time,
 * itself bounded): a transfer fails, it never hangs.
 */
import type { NbdEndpoint } from '../../../../common/src/nbd-config.ts';
import type { DiskError } from '../disk-session.ts';
import { NativeErrorCode, diskError } from './errors.ts';
import { NbdConnection, describeEndpoint } from './nbd-connection.ts';

export interface NbdClientOptions {
  endpoint: NbdEndpoint;
  /** Handshake deadline per attempt (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Deadline of one read request (default 10000 ms). */
  readTimeoutMs?: number;
  /** Reads in flight on the connection; more wait in line (default 16). */
  maxInFlight?: number;
  /** Largest single request; bigger reads are split (default 1 MiB). */
  maxRequestBytes?: number;
  /** Reconnect attempts after a drop before the client gives up for good (default 4). */
  reconnectAttempts?: number;
  signal?: AbortSignal;
  /** Told the size of every read the server answered (metrics). */
  onRead?: (bytes: number) => void;
}

/** Backoff before reconnect attempt n (0-based): 0, 100, 400, 1600 ms… */
export function reconnectDelayMs(attempt: number): number {
  return attempt === 0 ? 0 : Math.min(100 * 4 ** (attempt - 1), 5000);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class NbdClient {
  private conn: NbdConnection | null;
  private connecting: Promise<NbdConnection> | null = null;
  private waiting: (() => void)[] = [];
  private inFlight = 0;
  private closed = false;
  private gaveUp: DiskError | null = null;
  /** Disk size in bytes, as the server announced it on the latest connection. */
  size: number;
  private maxPayload: number;
  reconnects = 0;

  private constructor(
    private readonly opts: Required<Omit<NbdClientOptions, 'signal' | 'onRead'>>,
    private readonly onRead: (bytes: number) => void,
    conn: NbdConnection,
  ) {
    this.conn = conn;
    this.size = conn.size;
    this.maxPayload = conn.maxPayload;
    this.watch(conn);
  }

  static async connect(options: NbdClientOptions): Promise<NbdClient> {
    const opts = {
      endpoint: options.endpoint,
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      readTimeoutMs: options.readTimeoutMs ?? 10000,
      maxInFlight: options.maxInFlight ?? 16,
      maxRequestBytes: options.maxRequestBytes ?? 1024 * 1024,
      reconnectAttempts: options.reconnectAttempts ?? 4,
    };
    const conn = await NbdConnection.open(opts.endpoint, opts.connectTimeoutMs, options.signal);
    return new NbdClient(opts, options.onRead ?? (() => {}), conn);
  }

  /** False once closed or once reconnecting failed for good. */
  get healthy(): boolean {
    return !this.closed && this.gaveUp === null;
  }

  private watch(conn: NbdConnection): void {
    conn.onClose = () => {
      if (this.conn === conn) this.conn = null;
    };
  }

  private async connection(): Promise<NbdConnection> {
    if (this.closed) throw diskError(NativeErrorCode.Closed, 'other', 'the NBD client is closed');
    if (this.gaveUp) throw this.gaveUp;
    if (this.conn && !this.conn.closed) return this.conn;
    this.connecting ??= this.reconnect().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async reconnect(): Promise<NbdConnection> {
    let last: unknown;
    for (let attempt = 0; attempt < this.opts.reconnectAttempts; attempt++) {
      await sleep(reconnectDelayMs(attempt));
      if (this.closed) break;
      try {
        const conn = await NbdConnection.open(this.opts.endpoint, this.opts.connectTimeoutMs);
        if (this.closed) {
          conn.disconnect();
          break;
        }
        this.reconnects++;
        this.size = conn.size;
        this.maxPayload = conn.maxPayload;
        this.conn = conn;
        this.watch(conn);
        return conn;
      } catch (err) {
        last = err;
      }
    }
    this.gaveUp = diskError(
      NativeErrorCode.ConnectionLost,
      'other',
      `${describeEndpoint(this.opts.endpoint)}: lost the connection and could not reconnect`,
      last,
    );
    throw this.gaveUp;
  }

  private async slot(): Promise<void> {
    if (this.inFlight < this.opts.maxInFlight) {
      this.inFlight++;
      return;
    }
    // The line is bounded by the callers: transfers are bounded, and the block cache
    // merges reads of the same block.
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.inFlight--;
  }

  /** Reads exactly `length` bytes at `offset` (must lie inside the disk). */
  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    await this.readInto(offset, length, buf, 0);
    return buf;
  }

  /** Reads exactly `length` bytes at `offset` into `dst` at `dstOffset`. */
  async readInto(offset: number, length: number, dst: Buffer, dstOffset: number): Promise<void> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw diskError(
        NativeErrorCode.ReadFailed,
        'corrupt',
        `read of ${length} bytes at ${offset} is outside the ${this.size}-byte disk`,
      );
    }
    const max = Math.max(512, Math.min(this.opts.maxRequestBytes, this.maxPayload));
    if (length <= max) return this.readOne(offset, length, dst, dstOffset);
    const parts: Promise<void>[] = [];
    for (let at = 0; at < length; at += max) {
      parts.push(this.readOne(offset + at, Math.min(max, length - at), dst, dstOffset + at));
    }
    // Settle all before failing: no part may still be writing into `dst` once we return.
    const failed = (await Promise.allSettled(parts)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private async readOne(
    offset: number,
    length: number,
    dst: Buffer,
    dstOffset: number,
  ): Promise<void> {
    await this.slot();
    try {
      const conn = await this.connection();
      await conn.read(offset, length, this.opts.readTimeoutMs, dst, dstOffset);
      this.onRead(length);
    } finally {
      this.release();
    }
  }

  /** Sends NBD_CMD_DISC and closes; safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.conn?.disconnect();
    this.conn = null;
    for (const w of this.waiting.splice(0)) w();
  }
}
