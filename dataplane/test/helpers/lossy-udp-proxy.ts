/**
 * A UDP proxy that drops, duplicates and reorders packets both ways, for TFTP: it
 * follows the server's per-transfer TID. Each client gets its own upstream socket, and
 * each server port that answers it gets a mirror socket on the proxy, so the client sees
 * a distinct TID per transfer exactly as it would without the proxy.
 */
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { prng } from './fixtures.ts';

export interface Impairment {
  drop: number;
  duplicate: number;
  reorder: number;
  /** A reordered packet is held back this long at most (ms). */
  maxDelayMs: number;
  seed: number;
  /**
   * Packets the link never duplicates (they may still be dropped or reordered): for a
   * client bug no server can work around — atftp aborts on any second OACK, even one the
   * network duplicated.
   */
  neverDuplicate?: (msg: Buffer) => boolean;
}

export interface ProxyStats {
  forwarded: number;
  dropped: number;
  duplicated: number;
  reordered: number;
}

interface Session {
  upstream: Socket;
  /** server port → the proxy socket the client talks to for it */
  mirrors: Map<number, Socket>;
}

// One session per client port; past this the proxy refuses new clients (a bounded test tool).
const MAX_SESSIONS = 2000;

/** A UDP socket on a free port of `address`; later socket errors (ICMP refusals) are ignored. */
export function bindUdp4(address: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, address, () => {
      s.off('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
  });
}

export class LossyUdpProxy {
  readonly stats: ProxyStats = { forwarded: 0, dropped: 0, duplicated: 0, reordered: 0 };
  private readonly sessions = new Map<string, Promise<Session>>();
  private readonly sockets: Socket[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly random: () => number;
  private closed = false;

  private constructor(
    private readonly front: Socket,
    private readonly serverAddress: string,
    private readonly serverPort: number,
    private readonly impairment: Impairment,
    private readonly address: string,
  ) {
    this.random = prng(impairment.seed);
    this.sockets.push(front);
    front.on('message', (msg, rinfo) => {
      void this.session(rinfo.address, rinfo.port).then((s) => {
        if (s) this.impair(s.upstream, msg, this.serverPort, this.serverAddress);
      });
    });
  }

  static async start(
    serverAddress: string,
    serverPort: number,
    impairment: Impairment,
    address = '127.0.0.1',
  ): Promise<LossyUdpProxy> {
    const front = await bindUdp4(address);
    return new LossyUdpProxy(front, serverAddress, serverPort, impairment, address);
  }

  get port(): number {
    return this.front.address().port;
  }

  private session(clientAddress: string, clientPort: number): Promise<Session | undefined> {
    const key = `${clientAddress}:${clientPort}`;
    let s = this.sessions.get(key);
    if (!s) {
      if (this.sessions.size >= MAX_SESSIONS || this.closed) return Promise.resolve(undefined);
      s = this.openSession(clientAddress, clientPort);
      this.sessions.set(key, s);
    }
    return s;
  }

  private async openSession(clientAddress: string, clientPort: number): Promise<Session> {
    const upstream = await bindUdp4(this.address);
    this.sockets.push(upstream);
    const session: Session = { upstream, mirrors: new Map() };
    upstream.on('message', (msg, rinfo) => {
      void this.mirror(session, rinfo.port).then((m) => {
        if (m) this.impair(m, msg, clientPort, clientAddress);
      });
    });
    return session;
  }

  private async mirror(session: Session, serverTid: number): Promise<Socket | undefined> {
    let m = session.mirrors.get(serverTid);
    if (m || this.closed) return m;
    m = await bindUdp4(this.address);
    // Another packet from the same TID may have raced us here.
    const raced = session.mirrors.get(serverTid);
    if (raced) {
      m.close();
      return raced;
    }
    session.mirrors.set(serverTid, m);
    this.sockets.push(m);
    m.on('message', (msg) => this.impair(session.upstream, msg, serverTid, this.serverAddress));
    return m;
  }

  private impair(via: Socket, msg: Buffer, port: number, address: string): void {
    if (this.closed) return;
    const r = this.random();
    const { drop, duplicate, reorder, maxDelayMs } = this.impairment;
    const send = () => {
      if (!this.closed) via.send(msg, port, address);
    };
    if (r < drop) {
      this.stats.dropped++;
      return;
    }
    this.stats.forwarded++;
    if (r < drop + duplicate) {
      if (this.impairment.neverDuplicate?.(msg)) return send();
      this.stats.duplicated++;
      send();
      send();
    } else if (r < drop + duplicate + reorder) {
      // Held back: packets sent after it overtake it.
      this.stats.reordered++;
      const t = setTimeout(
        () => {
          this.timers.delete(t);
          send();
        },
        1 + this.random() * maxDelayMs,
      );
      this.timers.add(t);
    } else {
      send();
    }
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.sockets) {
      try {
        s.close();
      } catch {
        // already closed
      }
    }
  }
}
