/**
 * Where the HTTP boot server listens: one TCP listener per local address a `--listen`
 * spec selects (tftp/listen-spec.ts, the same rules as TFTP's: by default every address
 * but virtual interfaces), rescanned for addresses that come and go. A wildcard socket
 * would answer on the pod-facing interfaces too (kube-ipvs0, CNI bridges), which the
 * exposure rule forbids (docs/security.md, "Exposure"); binding each address keeps the
 * boot server on the boot network, and lets another service hold the same port elsewhere.
 *
 * Start-up: a selected address that cannot be bound for good (port taken, no permission)
 * stops the server with RTFTP_ERR_BIND unless only `all` chose it; an address not on this
 * node is bound when it appears. The policy is TFTP's (tftp/listeners.ts).
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { localAddresses } from '../tftp/listeners.ts';
import { describeListenSpec, rescanChanges, selectListenAddresses } from '../tftp/listen-spec.ts';
import type { ListenSpec, LocalAddress } from '../tftp/listen-spec.ts';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface HttpServerTuning {
  /** Time to receive a request's headers (slowloris). */
  headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
}

export class HttpListeners {
  private readonly servers = new Map<string, Server>();
  private readonly failures = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private rescanning = false;
  private closed = false;
  port: number;

  constructor(
    private readonly spec: ListenSpec,
    port: number,
    private readonly onRequest: RequestHandler,
    private readonly onConnection: (socket: Socket) => void,
    private readonly tuning: HttpServerTuning,
    private readonly logger: Logger,
    private readonly listAddresses: () => LocalAddress[] = localAddresses,
  ) {
    this.port = port;
  }

  get addresses(): string[] {
    return [...this.servers.keys()];
  }

  async start(): Promise<void> {
    const selected = selectListenAddresses(this.spec, this.listAddresses());
    for (const s of selected) {
      const err = await this.bindOne(s.address);
      if (!err) continue;
      if (err.code !== 'EADDRNOTAVAIL' && (err.code === 'EACCES' || !s.implicit))
        throw Object.assign(
          new Error(`cannot bind ${s.address} TCP port ${this.port}: ${err.code ?? err.message}`),
          { code: 'RTFTP_ERR_BIND', cause: err },
        );
      this.noteFailure(s.address, err);
    }
    if (this.servers.size === 0)
      this.logger.warn(
        { ...describeListenSpec(this.spec), port: this.port },
        'HTTP boot listens on no address yet; rescanning',
      );
    this.timer = setInterval(() => void this.rescan(), this.spec.rescanMs);
    this.timer.unref();
  }

  /** Binds addresses that appeared, closes the ones that went; never throws. */
  async rescan(): Promise<void> {
    if (this.rescanning || this.closed) return;
    this.rescanning = true;
    try {
      const selected = selectListenAddresses(this.spec, this.listAddresses());
      const { gone, missing } = rescanChanges(selected, this.servers);
      for (const address of gone) {
        this.servers.get(address)?.close();
        this.servers.get(address)?.closeAllConnections();
        this.servers.delete(address);
        this.logger.info({ address, protocol: 'http' }, 'Address removed');
      }
      for (const s of missing) {
        const err = await this.bindOne(s.address);
        if (err) this.noteFailure(s.address, err);
        else
          this.logger.info(
            { address: s.address, port: this.port, protocol: 'http' },
            'Address added',
          );
      }
    } finally {
      this.rescanning = false;
    }
  }

  private noteFailure(address: string, err: NodeJS.ErrnoException): void {
    const code = err.code ?? err.message;
    if (this.failures.get(address) === code) return;
    this.failures.set(address, code);
    this.logger.info(
      { address, port: this.port, err: code, protocol: 'http' },
      'HTTP boot address not bound; retried at every rescan',
    );
  }

  private bindOne(address: string): Promise<NodeJS.ErrnoException | undefined> {
    const server = createServer(
      {
        headersTimeout: this.tuning.headersTimeoutMs,
        requestTimeout: this.tuning.headersTimeoutMs,
        keepAliveTimeout: this.tuning.keepAliveTimeoutMs,
        // No 100-continue, no upgrades: a boot server has no use for them.
        maxHeaderSize: 8192,
      },
      this.onRequest,
    );
    server.on('connection', this.onConnection);
    return new Promise((resolve) => {
      const onError = (err: NodeJS.ErrnoException) => resolve(err);
      server.once('error', onError);
      server.listen(
        { host: address, port: this.port, exclusive: true, ipv6Only: address.includes(':') },
        () => {
          server.off('error', onError);
          if (this.closed) {
            server.close();
            return resolve(undefined);
          }
          server.on('error', (err) =>
            this.logger.warn({ address, err: err.message, protocol: 'http' }, 'Listener error'),
          );
          const bound = server.address();
          if (this.port === 0 && bound && typeof bound === 'object') this.port = bound.port;
          this.servers.set(address, server);
          this.failures.delete(address);
          resolve(undefined);
        },
      );
    });
  }

  /** Stops accepting; idle keep-alive connections close now, busy ones when done. */
  stopAccepting(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const s of this.servers.values()) {
      s.close();
      s.closeIdleConnections();
    }
  }

  /** Closes every connection, busy or not. */
  closeAll(): void {
    this.stopAccepting();
    for (const s of this.servers.values()) s.closeAllConnections();
    this.servers.clear();
  }
}
