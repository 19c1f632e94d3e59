/**
 * The I/O shell around one transfer's state machine: it owns the transfer's own UDP
 * socket (its TID), the retransmission timer and the block buffers, feeds packets,
 * timeouts and completed reads into `step`, and carries out the actions it returns.
 */
import type { Socket, RemoteInfo } from 'node:dgram';
import { encodeError, encodeOack, parsePacket } from './codec.ts';
import { Opcode, TftpError } from './protocol.ts';
import { createTransfer, step } from './transfer.ts';
import type {
  Outcome,
  TransferAction,
  TransferEvent,
  TransferSettings,
  TransferState,
} from './transfer.ts';
import { BlockReader } from './block-reader.ts';
import type { OpenedFile } from '../sources/source.ts';

export interface TransferResult {
  outcome: Outcome;
  detail: string;
  /** Payload bytes sent at least once. */
  bytes: number;
  retransmits: number;
  durationMs: number;
}

export interface TransferHooks {
  onRetransmit(): void;
  /** An ERROR packet was sent (to the peer or to a stray sender). */
  onErrorSent(code: number): void;
  onFinish(result: TransferResult): void;
}

export class TransferShell {
  readonly state: TransferState;
  private readonly reader: BlockReader;
  private timer: NodeJS.Timeout | null = null;
  private readonly startedAt = process.hrtime.bigint();
  private finished = false;
  /** Sends that failed (reported through the socket's 'error' event); the timer resends. */
  sendErrors = 0;

  constructor(
    private readonly socket: Socket,
    private readonly peer: { address: string; port: number },
    private readonly file: OpenedFile,
    settings: TransferSettings,
    private readonly oack: ReadonlyMap<string, string>,
    private readonly hooks: TransferHooks,
  ) {
    this.state = createTransfer(settings);
    this.reader = new BlockReader(file, settings.blksize, settings.readAheadBlocks);
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    // Without a send callback Node reports a failed send here, and saves a tick per packet.
    socket.on('error', () => {
      this.sendErrors += 1;
    });
  }

  start(): void {
    this.dispatch({ type: 'start' });
  }

  /** Ends the transfer from the server's side (shutdown, superseded by a new boot). */
  abort(message: string, code: number = TftpError.NotDefined): void {
    this.dispatch({ type: 'abort', code, message });
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (rinfo.port !== this.peer.port || rinfo.address !== this.peer.address) {
      // RFC 1350 §4: a packet from another TID gets ERROR 5; this transfer goes on.
      this.send(
        encodeError(TftpError.UnknownTid, 'unknown transfer ID'),
        rinfo.port,
        rinfo.address,
      );
      this.hooks.onErrorSent(TftpError.UnknownTid);
      return;
    }
    // Fast path: ACKs are nearly every packet a transfer receives.
    if (msg.length >= 4 && msg[0] === 0 && msg[1] === Opcode.Ack) {
      this.dispatch({ type: 'ack', block: msg.readUInt16BE(2) });
      return;
    }
    const parsed = parsePacket(msg);
    if (parsed.ok && parsed.packet.opcode === Opcode.Error) {
      this.dispatch({
        type: 'client-error',
        code: parsed.packet.code,
        message: parsed.packet.message,
      });
    }
    // Anything else from the peer mid-transfer (a repeated RRQ, junk) is ignored.
  }

  private dispatch(event: TransferEvent): void {
    if (this.finished) return;
    const actions = step(this.state, event);
    for (const a of actions) this.perform(a);
  }

  private perform(a: TransferAction): void {
    switch (a.type) {
      case 'send-data':
        if (a.retransmit) this.hooks.onRetransmit();
        this.send(this.reader.packet(a.block), this.peer.port, this.peer.address);
        break;
      case 'send-oack':
        if (a.retransmit) this.hooks.onRetransmit();
        this.send(encodeOack(this.oack), this.peer.port, this.peer.address);
        break;
      case 'send-error':
        this.send(encodeError(a.code, a.message), this.peer.port, this.peer.address);
        this.hooks.onErrorSent(a.code);
        break;
      case 'read':
        this.reader.readUpTo(a.upTo).then(
          (r) => this.dispatch({ type: 'read-done', upTo: r.upTo, eof: r.eof }),
          (err: Error) => this.dispatch({ type: 'read-failed', message: err.message }),
        );
        break;
      case 'arm-timer':
        if (this.timer) this.timer.refresh();
        else this.timer = setTimeout(() => this.dispatch({ type: 'timeout' }), a.ms);
        break;
      case 'finish':
        this.finish(a.outcome, a.detail);
        break;
    }
  }

  private send(buf: Buffer, port: number, address: string): void {
    this.socket.send(buf, 0, buf.length, port, address);
  }

  private finish(outcome: Outcome, detail: string): void {
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    // Let a final ERROR packet leave before the socket goes.
    setImmediate(() => {
      try {
        this.socket.close();
      } catch {
        /* already closed */
      }
    });
    void this.file.close().catch(() => undefined);
    const durationMs = Number(process.hrtime.bigint() - this.startedAt) / 1e6;
    this.hooks.onFinish({
      outcome,
      detail,
      bytes: this.reader.bytesRead,
      retransmits: this.state.retransmits,
      durationMs,
    });
  }
}
