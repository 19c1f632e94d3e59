/**
 * The boot storm's clients: many machines, each fetching its files at once, written to cost
 * as little CPU per packet as possible so that on a 2-core machine the server, not the load
 * generator, is what is measured (bench/storm.ts reports this process's CPU seconds).
 *
 * - One UDP socket per transfer, bound to the client's own address; packets from any port
 *   but the server's TID (its first reply) are dropped.
 * - Every DATA payload is compared in place with the expected bytes (`Buffer.compare` on
 *   ranges: a memcmp, no copy, no hash), so "byte-identical" is exact.
 * - One coarse timer for all transfers (every 50 ms) instead of one per packet.
 *
 * Profiles, as firmware asks:
 * - `edk2`: blksize 1468, windowsize 4, tsize (RFC 7440 windowed);
 * - `ipxe`: a tsize probe first (RRQ with tsize, OACK, ERROR to end it), then the file
 *   lock-step at blksize 1432.
 */
import dgram from 'node:dgram';
import type { Socket } from 'node:dgram';

export type StormProfile = 'edk2' | 'ipxe';

export interface StormFetch {
  /** The file name to ask for. */
  name: string;
  /** Index into the expected payloads. */
  payload: number;
}

export interface StormClientSpec {
  host: string;
  port: number;
  profile: StormProfile;
  clients: { address: string; fetches: StormFetch[] }[];
  /** Resend after this much silence (firmware: about a second). */
  retransmitMs: number;
  /** Resends in a row before a transfer fails. */
  maxRetries: number;
  /**
   * Each client fetches its files one after the other, as firmware does (iPXE's `kernel`,
   * then `initrd`; an EFI loader's kernel, then initrd), the next once the last is complete
   * (a failed fetch ends the client). Absent or false: all of a client's files at once.
   */
  sequential?: boolean;
}

export interface StormClientOutcome {
  address: string;
  ok: boolean;
  /** From the storm's start to this client's last byte of its last file (ms). */
  ms: number;
  failure?: string;
}

export interface StormRunResult {
  clients: StormClientOutcome[];
  /** Payload bytes received in order (each byte once). */
  bytes: number;
  /** DATA packets received that were not the next block: the server's retransmits and reordering. */
  duplicateData: number;
  /** Packets this side sent again after a silence (RRQ, ACK). */
  resent: number;
  /** CPU seconds this process used during the run (user + system). */
  cpuSeconds: number;
  /** Wall-clock start and end (epoch ms), to merge the results of several processes. */
  startedAt: number;
  endedAt: number;
}

const PROFILE_OPTIONS: Record<StormProfile, Record<string, string>> = {
  edk2: { blksize: '1468', windowsize: '4', tsize: '0' },
  ipxe: { blksize: '1432', tsize: '0' },
};

const OP = { Rrq: 1, Data: 3, Ack: 4, Error: 5, Oack: 6 } as const;

function encodeRequest(file: string, options: Record<string, string>): Buffer {
  const parts = [file, 'octet', ...Object.entries(options).flat()];
  return Buffer.concat([Buffer.from([0, OP.Rrq]), ...parts.map((s) => Buffer.from(`${s}\0`))]);
}

function ack(block: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b[0] = 0;
  b[1] = OP.Ack;
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

const PROBE_ABORT = Buffer.concat([
  Buffer.from([0, OP.Error, 0, 8]),
  Buffer.from('size probe done\0'),
]);

/** One transfer: a fresh socket, a request, the DATA stream checked against `expected`. */
class StormTransfer {
  private readonly socket: Socket;
  private serverPort = 0;
  private blksize = 512;
  private windowsize = 1;
  /** Blocks received in order. */
  private received = 0;
  private inWindow = 0;
  private last: Buffer;
  private lastTo: number;
  lastActivity = performance.now();
  private retries = 0;
  private probing: boolean;
  /** Not before start(): a client's later files wait for its earlier ones (sequential). */
  private started = false;
  done = false;

  constructor(
    private readonly spec: StormClientSpec,
    private readonly address: string,
    private readonly name: string,
    private readonly expected: Buffer,
    private readonly stats: { bytes: number; duplicateData: number; resent: number },
    private readonly finish: (failure?: string) => void,
  ) {
    this.probing = spec.profile === 'ipxe';
    this.socket = dgram.createSocket('udp4');
    this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.port));
    this.socket.on('error', (err) => this.fail(`socket: ${err.message}`));
    this.last = encodeRequest(name, PROFILE_OPTIONS[spec.profile]);
    this.lastTo = spec.port;
  }

  start(): void {
    this.started = true;
    this.lastActivity = performance.now();
    this.socket.bind({ address: this.address, port: 0 }, () => this.send(this.last, this.lastTo));
  }

  private send(buf: Buffer, port: number): void {
    this.last = buf;
    this.lastTo = port;
    this.socket.send(buf, port, this.spec.host);
  }

  /** Never to start (its client failed an earlier file): closes its socket. */
  discard(): void {
    this.done = true;
    this.socket.close();
  }

  /** Called by the shared timer. */
  tick(now: number): void {
    if (!this.started || this.done || now - this.lastActivity < this.spec.retransmitMs) return;
    if (++this.retries > this.spec.maxRetries) {
      this.fail(`timed out after ${this.received} blocks`);
      return;
    }
    this.lastActivity = now;
    this.stats.resent++;
    this.send(this.last, this.lastTo);
  }

  private onMessage(msg: Buffer, port: number): void {
    if (this.done || msg.length < 4 || msg[0] !== 0) return;
    if (!this.serverPort) this.serverPort = port;
    else if (port !== this.serverPort) return;
    const op = msg[1];
    if (op === OP.Data) return this.onData(msg);
    if (op === OP.Oack) return this.onOack(msg);
    if (op === OP.Error) {
      const text = msg.toString('latin1', 4, Math.max(4, msg.length - 1));
      this.fail(`ERROR ${msg.readUInt16BE(2)} ${text}`);
    }
  }

  private onOack(msg: Buffer): void {
    if (this.received > 0) return;
    const strings = msg.toString('latin1', 2, msg.length - 1).split('\0');
    for (let i = 0; i + 1 < strings.length; i += 2) {
      if (strings[i] === 'blksize') this.blksize = Number(strings[i + 1]);
      if (strings[i] === 'windowsize') this.windowsize = Number(strings[i + 1]);
    }
    this.progress();
    if (this.probing) {
      // The size probe ends here: ERROR 8 from this TID, then the real request anew from a
      // fresh socket (firmware does the same: a new port per request).
      this.probing = false;
      this.socket.send(PROBE_ABORT, this.serverPort, this.spec.host);
      this.restart();
      return;
    }
    this.send(ack(0), this.serverPort);
  }

  private restart(): void {
    const next = new StormTransfer(
      this.spec,
      this.address,
      this.name,
      this.expected,
      this.stats,
      this.finish,
    );
    next.probing = false;
    this.done = true;
    this.replacedBy = next;
    setImmediate(() => this.socket.close());
    next.start();
  }

  /** The transfer that took over after a size probe (the timer follows it). */
  replacedBy: StormTransfer | undefined;

  private onData(msg: Buffer): void {
    const block = msg.readUInt16BE(2);
    if (block !== ((this.received + 1) & 0xffff)) {
      this.stats.duplicateData++;
      // RFC 7440 §4: acknowledge the last block in order so the window restarts there.
      if (this.windowsize > 1 && block !== (this.received & 0xffff)) {
        this.inWindow = 0;
        this.send(ack(this.received), this.serverPort);
      }
      return;
    }
    const len = msg.length - 4;
    const offset = this.received * this.blksize;
    if (
      offset + len > this.expected.length ||
      msg.compare(this.expected, offset, offset + len, 4, msg.length) !== 0
    ) {
      this.fail(`bytes differ in block ${this.received + 1}`);
      return;
    }
    this.received++;
    this.stats.bytes += len;
    this.progress();
    const lastBlock = len < this.blksize;
    if (lastBlock || ++this.inWindow >= this.windowsize) {
      this.inWindow = 0;
      this.send(ack(block), this.serverPort);
    }
    if (lastBlock) {
      const total = offset + len;
      this.end(total === this.expected.length ? undefined : `short: ${total} bytes`);
    }
  }

  private progress(): void {
    this.retries = 0;
    this.lastActivity = performance.now();
  }

  private fail(why: string): void {
    this.end(`${this.name}: ${why}`);
  }

  private end(failure?: string): void {
    if (this.done) return;
    this.done = true;
    // Let the final ACK leave before the socket goes.
    setImmediate(() => this.socket.close());
    this.finish(failure);
  }
}

/**
 * Runs every client of `spec` at once; resolves when every transfer has ended.
 * `payloads[i]` is the expected content of payload i.
 */
export function runStormClients(
  spec: StormClientSpec,
  payloads: readonly Buffer[],
): Promise<StormRunResult> {
  const startedAt = Date.now();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const stats = { bytes: 0, duplicateData: 0, resent: 0 };
  const transfers: StormTransfer[] = [];
  return new Promise((resolve) => {
    let open = 0;
    const outcomes: StormClientOutcome[] = [];
    const timer = setInterval(() => {
      const now = performance.now();
      for (let i = 0; i < transfers.length; i++) {
        let t = transfers[i]!;
        while (t.replacedBy) t = transfers[i] = t.replacedBy;
        t.tick(now);
      }
    }, 50);
    const settle = () => {
      clearInterval(timer);
      const cpu = process.cpuUsage(cpu0);
      resolve({
        clients: outcomes,
        ...stats,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        startedAt,
        endedAt: Date.now(),
      });
    };
    for (const c of spec.clients) {
      const outcome: StormClientOutcome = { address: c.address, ok: true, ms: 0 };
      outcomes.push(outcome);
      let left = c.fetches.length;
      open++;
      const mine = c.fetches.map(
        (f, i) =>
          new StormTransfer(spec, c.address, f.name, payloads[f.payload]!, stats, (why) => {
            if (why && outcome.ok) {
              outcome.ok = false;
              outcome.failure = why;
            }
            const next = mine[i + 1];
            if (spec.sequential && next) {
              if (!why) return next.start();
              // A failed fetch ends the client: the rest never start.
              for (const rest of mine.slice(i + 1)) rest.discard();
              left = 1;
            }
            if (--left > 0) return;
            outcome.ms = performance.now() - t0;
            if (--open === 0) settle();
          }),
      );
      transfers.push(...mine);
      for (const t of spec.sequential ? mine.slice(0, 1) : mine) t.start();
    }
    if (open === 0) settle();
  });
}
