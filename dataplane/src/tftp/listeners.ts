/**
 * One UDP socket per local address. Node's dgram cannot tell which local address a
 * datagram arrived on (no IP_PKTINFO), and firmware drops replies from any other
 * address, so "listen everywhere" means: bind each address separately, and rescan the
 * interfaces for addresses that come and go.
 */
import dgram from 'node:dgram';
import type { RemoteInfo, Socket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';

export type OnDatagram = (local: string, msg: Buffer, rinfo: RemoteInfo) => void;

/** Every address of every interface, IPv6 link-local ones with their zone. */
export function localAddresses(): string[] {
  const out: string[] = [];
  for (const [ifname, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family === 'IPv6' && a.address.toLowerCase().startsWith('fe80:'))
        out.push(`${a.address}%${ifname}`);
      else out.push(a.address);
    }
  }
  return out;
}

export function socketTypeOf(address: string): 'udp4' | 'udp6' {
  return isIPv6(address.replace(/%.*$/, '')) ? 'udp6' : 'udp4';
}

/** A socket for `address`; IPv6 ones are v6-only so IPv4 addresses bind separately. */
export function createUdpSocket(address: string): Socket {
  const type = socketTypeOf(address);
  return type === 'udp6'
    ? dgram.createSocket({ type, ipv6Only: true })
    : dgram.createSocket({ type });
}

/**
 * A transfer's own socket (its TID): a fresh port on the address the request arrived on,
 * connected to the client. Connected, the kernel routes once instead of per packet and
 * Node sends without resolving the address each time (a third less CPU per GiB, measured
 * in bench/tftp.ts), and the kernel keeps other senders out: a datagram from anyone but
 * the client gets ICMP port unreachable (as from tftp-hpa, whose transfers are connected
 * too) instead of reaching the transfer.
 */
export async function openTransferSocket(
  local: string,
  peer: { address: string; port: number },
): Promise<Socket> {
  const socket = createUdpSocket(local);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: local, port: 0 }, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    await new Promise<void>((resolve, reject) =>
      socket.connect(peer.port, peer.address, (err?: Error) => (err ? reject(err) : resolve())),
    );
    return socket;
  } catch (err) {
    socket.close();
    throw err;
  }
}

export class Listeners {
  private readonly sockets = new Map<string, Socket>();
  private rescanTimer: NodeJS.Timeout | null = null;
  /** The port actually bound (differs from the asked one when that was 0). */
  port: number;

  constructor(
    private readonly wanted: string[] | 'all',
    port: number,
    private readonly onDatagram: OnDatagram,
    private readonly logger: Logger,
    private readonly rescanMs = 10_000,
  ) {
    this.port = port;
  }

  get addresses(): string[] {
    return [...this.sockets.keys()];
  }

  async start(): Promise<void> {
    const addrs = this.wanted === 'all' ? localAddresses() : this.wanted;
    for (const a of addrs) await this.bindOne(a, this.wanted !== 'all');
    if (this.sockets.size === 0)
      throw Object.assign(new Error('no address could be bound'), { code: 'RTFTP_ERR_BIND' });
    if (this.wanted === 'all') {
      this.rescanTimer = setInterval(() => void this.rescan(), this.rescanMs);
      this.rescanTimer.unref();
    }
  }

  private async rescan(): Promise<void> {
    const now = new Set(localAddresses());
    for (const [a, s] of this.sockets) {
      if (!now.has(a)) {
        s.close();
        this.sockets.delete(a);
        this.logger.info({ address: a }, 'Address removed');
      }
    }
    for (const a of now) if (!this.sockets.has(a)) await this.bindOne(a, false);
  }

  private bindOne(address: string, mustBind: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = createUdpSocket(address);
      const onError = (err: NodeJS.ErrnoException) => {
        socket.close();
        if (mustBind) {
          reject(
            Object.assign(
              new Error(`cannot bind ${address} port ${this.port}: ${err.code ?? err.message}`),
              { code: 'RTFTP_ERR_BIND', cause: err },
            ),
          );
        } else {
          this.logger.warn(
            { address, port: this.port, err: err.code ?? err.message },
            'Address not bound',
          );
          resolve();
        }
      };
      socket.once('error', onError);
      socket.bind({ address, port: this.port, exclusive: true }, () => {
        socket.off('error', onError);
        socket.on('error', (err) =>
          this.logger.warn({ address, err: err.message }, 'Listener socket error'),
        );
        if (this.port === 0) this.port = socket.address().port;
        socket.on('message', (msg, rinfo) => this.onDatagram(address, msg, rinfo));
        this.sockets.set(address, socket);
        resolve();
      });
    });
  }

  send(local: string, buf: Buffer, port: number, address: string): void {
    this.sockets.get(local)?.send(buf, 0, buf.length, port, address);
  }

  close(): void {
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }
}
