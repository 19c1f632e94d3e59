/**
 * A UDP socket with an awaitable receive queue, for tests that speak TFTP packet by
 * packet (firmware replays, protocol edge cases, the fuzzer, the measuring client).
 */
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';

export interface Datagram {
  msg: Buffer;
  address: string;
  port: number;
}

// A test reads what it expects; a server gone wild must not grow this without bound.
const MAX_QUEUED = 4096;

export class UdpEndpoint {
  private readonly queue: Datagram[] = [];
  private waiter: ((d: Datagram | undefined) => void) | undefined;
  /** Datagrams dropped because the queue was full: a test can assert on it. */
  overflowed = 0;

  private constructor(private readonly socket: Socket) {
    socket.on('message', (msg, rinfo) => {
      const d = { msg, address: rinfo.address, port: rinfo.port };
      const w = this.waiter;
      if (w) {
        this.waiter = undefined;
        w(d);
      } else if (this.queue.length < MAX_QUEUED) this.queue.push(d);
      else this.overflowed++;
    });
    // ICMP port unreachable surfaces as an error on Linux: a test sees it as silence.
    socket.on('error', () => {});
  }

  static open(address = '127.0.0.1', port = 0): Promise<UdpEndpoint> {
    return new Promise((resolve, reject) => {
      const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
      socket.once('error', reject);
      socket.bind(port, address, () => {
        socket.off('error', reject);
        resolve(new UdpEndpoint(socket));
      });
    });
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(msg: Buffer, port: number, address = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.send(msg, port, address, (err) => (err ? reject(err) : resolve())),
    );
  }

  /** The next datagram, or undefined after `timeoutMs` of silence. */
  receive(timeoutMs: number): Promise<Datagram | undefined> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve(undefined);
      }, timeoutMs);
      this.waiter = (d) => {
        clearTimeout(timer);
        resolve(d);
      };
    });
  }

  /** Everything that arrives within `ms` (used to count packets a server sends). */
  async collect(ms: number): Promise<Datagram[]> {
    const out: Datagram[] = [];
    const end = Date.now() + ms;
    for (;;) {
      const left = end - Date.now();
      if (left <= 0) return out;
      const d = await this.receive(left);
      if (d) out.push(d);
    }
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}

/** A port that was free a moment ago, for servers (in.tftpd, atftpd) that cannot bind port 0. */
export async function freeUdpPort(address = '127.0.0.1'): Promise<number> {
  const e = await UdpEndpoint.open(address, 0);
  const port = e.port;
  e.close();
  return port;
}
