/**
 * One NBD connection: the fixed-newstyle handshake (NBD_OPT_GO, falling back to
 * NBD_OPT_EXPORT_NAME) and the transmission phase with simple replies only. Many reads may
 * be in flight; replies are matched by handle. Any protocol violation or timeout destroys
 * the connection, failing everything pending on it: NbdClient reconnects.
 *
 * The socket reads into a receive buffer (`onread`), and a reply's payload is copied from
 * there straight into the reader's buffer (nbd-replies.ts): no allocation per received
 * chunk or per reply, which is what the garbage collector spent its time on at 100 MB/s.
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import type { NbdEndpoint } from '../../../../common/src/nbd-config.ts';
import { describeNbdEndpoint } from '../../../../common/src/nbd-url-redaction.ts';
import { ByteQueue } from './byte-queue.ts';
import { NativeErrorCode, diskError } from './errors.ts';
import type { DiskError } from '../disk-session.ts';
import {
  ClientFlag,
  Command,
  DEFAULT_MAX_PAYLOAD,
  HandshakeFlag,
  Info,
  MAX_OPTION_REPLY,
  NBD_INIT_MAGIC,
  NBD_OLDSTYLE_MAGIC,
  NBD_OPTS_MAGIC,
  NBD_REP_MAGIC,
  Option,
  Reply,
  ReplyError,
  encodeGo,
  encodeOption,
  encodeRequest,
} from './nbd-protocol.ts';
import { ReplyMatcher } from './nbd-replies.ts';

/**
 * The receive buffer, shared by every connection: the event loop reads one socket into
 * it and runs that socket's callback, which copies everything out, before the next read.
 * 64 KiB is what libuv asks for per read anyway; 500 disks cost 64 KiB, not 500 buffers.
 */
const receiveBuffer = Buffer.allocUnsafe(64 * 1024);

/** The target in messages: host, port and export only (common/src/nbd-url-redaction.ts). */
export const describeEndpoint = describeNbdEndpoint;

export class NbdConnection {
  private readonly queue = new ByteQueue();
  private waiter: { n: number; resolve: () => void } | null = null;
  private failure: DiskError | null = null;
  private failWaiter: ((e: DiskError) => void) | null = null;
  private readonly replies: ReplyMatcher;
  private nextHandle = 1;
  private transmitting = false;
  private corked = false;
  size = 0;
  maxPayload = DEFAULT_MAX_PAYLOAD;
  /** Called once when the connection ends for any reason. */
  onClose: (err: DiskError) => void = () => {};

  private constructor(
    private readonly socket: Socket,
    private readonly where: string,
  ) {
    this.replies = new ReplyMatcher(where, (err) => this.fail(err));
    socket.setNoDelay(true);
    socket.on('error', (err) => this.fail(this.socketError(err)));
    socket.on('close', () =>
      this.fail(
        diskError(
          NativeErrorCode.ConnectionLost,
          'other',
          `${this.where}: the NBD server closed the connection`,
        ),
      ),
    );
  }

  get closed(): boolean {
    return this.failure !== null;
  }

  get inFlight(): number {
    return this.replies.size;
  }

  /** Connects and negotiates; rejects with a DiskError naming the reason. */
  static async open(
    endpoint: NbdEndpoint,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<NbdConnection> {
    const where = describeEndpoint(endpoint);
    // The socket exists before the connection object; no byte arrives before this tick ends.
    const target: { conn?: NbdConnection } = {};
    const onread = {
      buffer: receiveBuffer,
      callback: (n: number, buf: Uint8Array) => {
        target.conn?.received(buf as Buffer, n);
        return true;
      },
    };
    const socket =
      endpoint.transport === 'tcp'
        ? connect({ host: endpoint.host, port: endpoint.port, onread })
        : connect({ path: endpoint.socket, onread });
    const conn = new NbdConnection(socket, where);
    target.conn = conn;
    const timer = setTimeout(
      () =>
        conn.fail(
          diskError(
            NativeErrorCode.Timeout,
            'timeout',
            `${where}: no NBD handshake within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    const onAbort = () =>
      conn.fail(diskError(NativeErrorCode.Aborted, 'other', `${where}: connect aborted`));
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    try {
      await conn.handshake(endpoint.exportName);
      return conn;
    } catch (err) {
      conn.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private socketError(err: NodeJS.ErrnoException): DiskError {
    const refused = ['ECONNREFUSED', 'ENOENT', 'EHOSTUNREACH', 'ENETUNREACH', 'EACCES'];
    if (!this.transmitting && err.code && refused.includes(err.code)) {
      return diskError(
        NativeErrorCode.ConnectionRefused,
        'connection-refused',
        `${this.where}: ${err.code}`,
        err,
      );
    }
    return diskError(
      NativeErrorCode.ConnectionLost,
      'other',
      `${this.where}: ${err.code ?? err.message}`,
      err,
    );
  }

  private async bytes(n: number): Promise<Buffer> {
    if (this.failure) throw this.failure;
    if (this.queue.length < n) {
      await new Promise<void>((resolve, reject) => {
        this.waiter = { n, resolve };
        this.failWaiter = reject;
      });
    }
    return this.queue.take(n);
  }

  private async handshake(exportName: string): Promise<void> {
    const hello = await this.bytes(18);
    if (!hello.subarray(0, 8).equals(NBD_INIT_MAGIC)) throw this.protocolError('not an NBD server');
    const magic = hello.readBigUInt64BE(8);
    if (magic === NBD_OLDSTYLE_MAGIC)
      throw this.protocolError('oldstyle NBD servers are not supported');
    if (magic !== NBD_OPTS_MAGIC) throw this.protocolError('unknown handshake magic');
    const flags = hello.readUInt16BE(16);
    const noZeroes = (flags & HandshakeFlag.NoZeroes) !== 0;
    const fixed = (flags & HandshakeFlag.FixedNewstyle) !== 0;
    const clientFlags = Buffer.alloc(4);
    clientFlags.writeUInt32BE(
      (fixed ? ClientFlag.FixedNewstyle : 0) | (noZeroes ? ClientFlag.NoZeroes : 0),
    );
    this.socket.write(clientFlags);
    // Without fixed newstyle a server may not understand NBD_OPT_GO at all.
    if (fixed && (await this.tryGo(exportName))) return this.startTransmission();
    this.socket.write(encodeOption(Option.ExportName, Buffer.from(exportName, 'utf8')));
    let reply: Buffer;
    try {
      reply = await this.bytes(noZeroes ? 10 : 134);
    } catch (err) {
      // NBD_OPT_EXPORT_NAME has no error reply: the server just hangs up on an unknown name.
      throw diskError(
        NativeErrorCode.ExportNotFound,
        'export-not-found',
        `${this.where}: the server closed the connection on export ${JSON.stringify(exportName)}`,
        err,
      );
    }
    this.size = Number(reply.readBigUInt64BE(0));
    this.startTransmission();
  }

  /** NBD_OPT_GO; false when the server does not support it. */
  private async tryGo(exportName: string): Promise<boolean> {
    this.socket.write(encodeGo(exportName, [Info.BlockSize]));
    let sawExport = false;
    for (;;) {
      const head = await this.bytes(20);
      if (head.readBigUInt64BE(0) !== NBD_REP_MAGIC)
        throw this.protocolError('bad option reply magic');
      const type = head.readUInt32BE(12);
      const len = head.readUInt32BE(16);
      if (len > MAX_OPTION_REPLY) throw this.protocolError(`option reply of ${len} bytes`);
      const data = await this.bytes(len);
      if (type === Reply.Ack) {
        if (!sawExport) throw this.protocolError('NBD_OPT_GO acknowledged without export size');
        return true;
      }
      if (type === Reply.Info && len >= 2) {
        const info = data.readUInt16BE(0);
        if (info === Info.Export && len >= 12) {
          this.size = Number(data.readBigUInt64BE(2));
          sawExport = true;
        } else if (info === Info.BlockSize && len >= 14) {
          const max = data.readUInt32BE(10);
          if (max > 0) this.maxPayload = Math.min(max, DEFAULT_MAX_PAYLOAD);
        }
        continue;
      }
      if (type === ReplyError.Unsupported) return false;
      const text = data.toString('utf8');
      if (type === ReplyError.Unknown) {
        throw diskError(
          NativeErrorCode.ExportNotFound,
          'export-not-found',
          `${this.where}: no export ${JSON.stringify(exportName)}${text ? `: ${text}` : ''}`,
        );
      }
      if (type & 0x80000000) {
        const why =
          type === ReplyError.TlsRequired
            ? 'the server requires TLS'
            : `error 0x${type.toString(16)}`;
        throw diskError(
          NativeErrorCode.Handshake,
          'other',
          `${this.where}: NBD_OPT_GO refused: ${why}${text ? `: ${text}` : ''}`,
        );
      }
      // Unknown informational replies are skipped (proto.md: clients ignore them).
    }
  }

  private startTransmission(): void {
    this.transmitting = true;
    // Anything the server sent right after the handshake is parsed as replies.
    const rest = this.queue.take(this.queue.length);
    if (rest.length > 0) this.replies.received(rest, rest.length);
  }

  /** Bytes from the socket, in its receive buffer: used before the callback returns. */
  private received(buf: Buffer, n: number): void {
    if (this.failure) return;
    if (this.transmitting) return this.replies.received(buf, n);
    // The handshake is a few hundred bytes: kept as copies, since `buf` is reused.
    this.queue.push(Buffer.from(buf.subarray(0, n)));
    if (this.waiter && this.queue.length >= this.waiter.n) {
      const w = this.waiter;
      this.waiter = null;
      this.failWaiter = null;
      w.resolve();
    }
  }

  private protocolError(what: string): DiskError {
    return diskError(NativeErrorCode.Handshake, 'other', `${this.where}: ${what}`);
  }

  /**
   * Reads `length` (≤ maxPayload) bytes at `offset` into `dst` at `dstOffset`; rejects
   * after `timeoutMs` without a reply (the reads of one connection share one timeout).
   */
  read(
    offset: number,
    length: number,
    timeoutMs: number,
    dst: Buffer,
    dstOffset: number,
  ): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const handle = this.nextHandle;
    this.nextHandle = this.nextHandle >= 0xffffffff ? 1 : this.nextHandle + 1;
    return new Promise<void>((resolve, reject) => {
      this.replies.expect(handle, {
        dst,
        dstOffset,
        length,
        offset,
        timeoutMs,
        resolve,
        reject,
      });
      // Requests made in one tick leave in one segment: a syscall per request is what
      // costs most on a loaded host.
      if (!this.corked) {
        this.corked = true;
        this.socket.cork();
        process.nextTick(() => {
          this.corked = false;
          this.socket.uncork();
        });
      }
      this.socket.write(encodeRequest(Command.Read, handle, offset, length));
    });
  }

  private fail(err: DiskError, destroySocket = true): void {
    if (this.failure) return;
    this.failure = err;
    this.failWaiter?.(err);
    this.waiter = null;
    this.failWaiter = null;
    this.replies.failAll(err);
    if (destroySocket) this.socket.destroy();
    this.onClose(err);
  }

  /** NBD_CMD_DISC, then closes the socket. */
  disconnect(): void {
    if (this.failure) return;
    if (this.transmitting) this.socket.write(encodeRequest(Command.Disconnect, 0, 0, 0));
    // end(), not destroy(): the NBD_CMD_DISC must reach the server.
    this.fail(diskError(NativeErrorCode.Closed, 'other', `${this.where}: disconnected`), false);
    this.socket.end();
  }

  destroy(): void {
    this.fail(diskError(NativeErrorCode.Closed, 'other', `${this.where}: closed`));
  }
}
