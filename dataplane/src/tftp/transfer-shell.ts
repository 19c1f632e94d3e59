/**
 * The I/O shell around one transfer's state machine: it owns the transfer's own UDP
 * socket (its TID), the retransmission timer and the block buffers, feeds packets,
 * timeouts and completed reads into `step`, and carries out the actions it returns.
 */
import type { Socket } from 'node:dgram';
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
import type { ReadableFile } from './block-reader.ts';

export interface TransferResult {
  outcome: Outcome;
  detail: string;
  /** Payload bytes sent at least once. */
  bytes: number;
  retransmits: number;
  durationMs: number;
}

export interface TransferHooks {
  /**
   * The client proved it exists (its first ACK): take the transfer's slot and memory
   * (admission). False refuses it: the client gets ERROR 0 "server busy". A worker asks
   * the main thread, so the answer may come later (the transfer waits in `claiming`).
   */
  claim(): boolean | Promise<boolean>;
  onRetransmit(): void;
  /** An ERROR packet was sent to the client. */
  onErrorSent(code: number): void;
  onFinish(result: TransferResult): void;
}

export class TransferShell {
  readonly state: TransferState;
  private readonly reader: BlockReader;
  private timer: NodeJS.Timeout | null = null;
  /** The delay `timer` was made with: `refresh()` reuses it, so another delay needs a new timer. */
  private timerMs = 0;
  private readonly startedAt = process.hrtime.bigint();
  private finished = false;

  constructor(
    /** Bound and connected to the client (openTransferSocket). */
    private readonly socket: Socket,
    private readonly file: ReadableFile,
    settings: TransferSettings,
    private readonly oack: ReadonlyMap<string, string>,
    private readonly hooks: TransferHooks,
  ) {
    this.state = createTransfer(settings);
    this.reader = new BlockReader(file, settings.blksize, settings.readAheadBlocks);
    socket.on('message', (msg) => this.onMessage(msg));
    // Without a send callback Node reports a failed send here (and, the socket being
    // connected, an ICMP refusal from the client): the retransmission timer resends, and
    // gives up after its retries. The listener keeps such an error from being thrown.
    socket.on('error', () => {});
  }

  start(): void {
    this.dispatch({ type: 'start' });
  }

  /** The client started over from the same port: ends the transfer without a word. */
  supersede(): void {
    this.dispatch({ type: 'superseded' });
  }

  /** Ends the transfer from the server's side (shutdown), with ERROR `code` to the client. */
  abort(message: string, code: number = TftpError.NotDefined): void {
    this.dispatch({ type: 'abort', code, message });
  }

  /** The client sent its RRQ again (absorbed by the server: it is this transfer's). */
  requestRepeated(): void {
    this.dispatch({ type: 'request-repeated' });
  }

  /** Admission turned the transfer away (evicted while unproven): ERROR 0 `message`. */
  refuse(message: string): void {
    this.dispatch({ type: 'refused', message });
  }

  /** From the client only: the socket is connected to it (listeners.ts). */
  private onMessage(msg: Buffer): void {
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
        this.sendToPeer(this.reader.packet(a.block));
        break;
      case 'send-oack':
        if (a.retransmit) this.hooks.onRetransmit();
        this.sendToPeer(encodeOack(this.oack));
        break;
      case 'send-error':
        this.sendToPeer(encodeError(a.code, a.message));
        this.hooks.onErrorSent(a.code);
        break;
      case 'read':
        this.reader.readUpTo(a.upTo).then(
          (r) => this.dispatch({ type: 'read-done', upTo: r.upTo, eof: r.eof }),
          (err: Error) => this.dispatch({ type: 'read-failed', message: err.message }),
        );
        break;
      case 'arm-timer':
        // The hot path (every window, same interval) restarts the timer in place.
        if (this.timer && a.ms === this.timerMs) this.timer.refresh();
        else {
          if (this.timer) clearTimeout(this.timer);
          this.timerMs = a.ms;
          this.timer = setTimeout(() => this.dispatch({ type: 'timeout' }), a.ms);
        }
        break;
      case 'claim': {
        // Always the last action of its step: answering it here cannot reorder anything.
        const answer = this.hooks.claim();
        if (typeof answer === 'boolean') this.answerClaim(answer);
        else
          answer.then(
            (ok) => this.answerClaim(ok),
            () => this.answerClaim(false),
          );
        break;
      }
      case 'finish':
        this.finish(a.outcome, a.detail);
        break;
    }
  }

  private answerClaim(ok: boolean): void {
    this.dispatch(ok ? { type: 'claimed' } : { type: 'refused', message: 'server busy' });
  }

  /** The socket is connected to the client: no address to resolve per packet. */
  private sendToPeer(buf: Buffer): void {
    this.socket.send(buf);
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
