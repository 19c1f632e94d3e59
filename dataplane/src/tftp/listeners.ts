/**
 * One UDP socket per local address. Node's dgram cannot tell which local address a
 * datagram arrived on (no IP_PKTINFO), and firmware drops replies from any other
 * address, so "listen everywhere" means: bind each address separately, and rescan the
 * interfaces for addresses that come and go. Which addresses: `--listen` (listen-spec.ts).
 */
import dgram from 'node:dgram';
import type { RemoteInfo, Socket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import { describeListenSpec, rescanChanges, selectListenAddresses } from './listen-spec.ts';
import type { ListenSpec, LocalAddress, SelectedAddress } from './listen-spec.ts';

export type OnDatagram = (local: string, msg: Buffer, rinfo: RemoteInfo) => void;

/** Every address of every interface, IPv6 link-local ones with their zone. */
export function localAddresses(): LocalAddress[] {
  const out: LocalAddress[] = [];
  for (const [ifname, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family === 'IPv6' && a.address.toLowerCase().startsWith('fe80:'))
        out.push({ address: `${a.address}%${ifname}`, interface: ifname });
      else out.push({ address: a.address, interface: ifname });
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

/**
 * The listening sockets of one `--listen` spec. At start, a selected address that cannot be
 * bound for good (port taken, no permission) stops the server with RTFTP_ERR_BIND, unless
 * only `all` chose it; an address that is not on this node (EADDRNOTAVAIL, or an IPv6
 * address still in duplicate address detection) is simply not bound yet. A spec that
 * matches nothing is not an error: the server runs not-ready (`addresses` is empty) and
 * the rescan binds addresses as they appear, every `spec.rescanMs`.
 */
export class Listeners {
  private readonly sockets = new Map<string, Socket>();
  /** Last bind failure logged per address, so a rescan repeats no log line. */
  private readonly failures = new Map<string, string>();
  private rescanTimer: NodeJS.Timeout | null = null;
  private rescanning = false;
  private closed = false;
  private matchedNothing = false;
  private receiveBufferLogged = false;
  /** The port actually bound (differs from the asked one when that was 0). */
  port: number;

  constructor(
    private readonly spec: ListenSpec,
    port: number,
    private readonly onDatagram: OnDatagram,
    private readonly logger: Logger,
    private readonly listAddresses: () => LocalAddress[] = localAddresses,
  ) {
    this.port = port;
  }

  get addresses(): string[] {
    return [...this.sockets.keys()];
  }

  /**
   * The smallest receive buffer of the listening sockets, as the kernel reports it (twice
   * what it grants), bytes; 0 when none is bound.
   */
  get receiveBufferBytes(): number {
    const sizes = [...this.sockets.values()].map((s) => s.getRecvBufferSize());
    return sizes.length ? Math.min(...sizes) : 0;
  }

  async start(): Promise<void> {
    const selected = selectListenAddresses(this.spec, this.listAddresses());
    let failedForGood = 0;
    for (const s of selected) {
      const err = await this.bindOne(s.address);
      if (!err || notPresent(err)) {
        if (err) this.noteFailure(s, err);
        continue;
      }
      if (err.code === 'EACCES' || !s.implicit) throw bindError(s.address, this.port, err);
      failedForGood++;
      this.noteFailure(s, err);
    }
    if (this.sockets.size === 0 && failedForGood > 0)
      throw Object.assign(new Error('no address could be bound'), { code: 'RTFTP_ERR_BIND' });
    this.noteMatch(selected);
    this.rescanTimer = setInterval(() => void this.rescan(), this.spec.rescanMs);
    this.rescanTimer.unref();
  }

  /** Binds addresses that appeared, closes the ones that went; never throws. */
  async rescan(): Promise<void> {
    if (this.rescanning || this.closed) return;
    this.rescanning = true;
    try {
      const selected = selectListenAddresses(this.spec, this.listAddresses());
      const { gone, missing } = rescanChanges(selected, this.sockets);
      for (const a of gone) {
        this.sockets.get(a)?.close();
        this.sockets.delete(a);
        this.logger.info({ address: a }, 'Address removed');
      }
      for (const s of missing) {
        const err = await this.bindOne(s.address);
        if (err) this.noteFailure(s, err);
        else if (this.sockets.has(s.address))
          this.logger.info({ address: s.address, port: this.port }, 'Address added');
      }
      this.noteMatch(selected);
    } finally {
      this.rescanning = false;
    }
  }

  /** One line when the server stops having anything to listen on, not one per rescan. */
  private noteMatch(selected: SelectedAddress[]): void {
    const nothing = this.sockets.size === 0;
    if (nothing && !this.matchedNothing) {
      this.logger.warn(
        {
          ...describeListenSpec(this.spec),
          port: this.port,
          selected: selected.map((s) => s.address),
          interfaces: [...new Set(this.listAddresses().map((a) => a.interface))].join(','),
        },
        'Listen matched no address; not ready until one appears',
      );
    }
    this.matchedNothing = nothing;
  }

  private noteFailure(s: SelectedAddress, err: NodeJS.ErrnoException): void {
    const code = err.code ?? err.message;
    if (this.failures.get(s.address) === code) return;
    this.failures.set(s.address, code);
    if (notPresent(err))
      this.logger.info(
        { address: s.address, port: this.port, err: code },
        'Address not available on this node; retried at every rescan',
      );
    else this.logger.warn({ address: s.address, port: this.port, err: code }, 'Address not bound');
  }

  private bindOne(address: string): Promise<NodeJS.ErrnoException | undefined> {
    return new Promise((resolve) => {
      const socket = createUdpSocket(address);
      const onError = (err: NodeJS.ErrnoException) => {
        socket.close();
        resolve(err);
      };
      socket.once('error', onError);
      socket.bind({ address, port: this.port, exclusive: true }, () => {
        socket.off('error', onError);
        if (this.closed) {
          socket.close();
          resolve(undefined);
          return;
        }
        socket.on('error', (err) =>
          this.logger.warn({ address, err: err.message }, 'Listener socket error'),
        );
        if (this.port === 0) this.port = socket.address().port;
        this.sizeReceiveBuffer(socket, address);
        socket.on('message', (msg, rinfo) => this.onDatagram(address, msg, rinfo));
        this.sockets.set(address, socket);
        this.failures.delete(address);
        resolve(undefined);
      });
    });
  }

  /**
   * Asks for --listen-buffer. The kernel caps it at net.core.rmem_max without a word (and
   * reports twice what it grants): said once, with the fix, when the cap bites.
   */
  private sizeReceiveBuffer(socket: Socket, address: string): void {
    const wanted = this.spec.receiveBufferBytes ?? 0;
    if (wanted === 0) return;
    try {
      socket.setRecvBufferSize(wanted);
    } catch (err) {
      this.logger.warn({ address, err: (err as Error).message }, 'Listen receive buffer not set');
      return;
    }
    if (this.receiveBufferLogged) return;
    this.receiveBufferLogged = true;
    const got = socket.getRecvBufferSize();
    // Linux reports twice what it granted: granted in full, that is 2 × wanted.
    if (got >= 2 * wanted)
      this.logger.info({ requestedBytes: wanted, bytes: got }, 'Listen receive buffer set');
    else
      this.logger.warn(
        {
          requestedBytes: wanted,
          bytes: got,
          fix: `sysctl -w net.core.rmem_max=${wanted} on this node`,
        },
        'Listen receive buffer capped by net.core.rmem_max: a burst of requests past it is dropped',
      );
  }

  send(local: string, buf: Buffer, port: number, address: string): void {
    this.sockets.get(local)?.send(buf, 0, buf.length, port, address);
  }

  close(): void {
    this.closed = true;
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }
}

/** The address is not (yet) on this node: absent, or IPv6 still in duplicate address detection. */
function notPresent(err: NodeJS.ErrnoException): boolean {
  return err.code === 'EADDRNOTAVAIL';
}

function bindError(address: string, port: number, err: NodeJS.ErrnoException): Error {
  return Object.assign(
    new Error(`cannot bind ${address} port ${port}: ${err.code ?? err.message}`),
    {
      code: 'RTFTP_ERR_BIND',
      cause: err,
    },
  );
}
