/**
 * The HTTP boot server: the same per-client views as TFTP, over HTTP/1.1 (GET and HEAD,
 * one range, validators), for iPXE, UEFI HTTP Boot and GRUB, which fetch kernels and
 * initrds at link speed over it (docs/http-boot.md).
 *
 * Self-contained: it takes the view chain, the serial directory, the admission object it
 * shares with TFTP, metrics and a logger, so it can run wherever a client's disk session
 * lives. Which name reaches which source is decided by the modules TFTP uses
 * (sources/client-identity.ts → request-path.ts, view.ts); what the answer is, by
 * response-plan.ts; how bytes flow, by stream-file.ts.
 *
 * Identity is the TCP peer address, exactly as TFTP's source address: a client behind a
 * proxy or NAT is the proxy's address, and no forwarded header (Forwarded,
 * X-Forwarded-For, X-Real-IP) is ever read. The TCP handshake proves the address, so a
 * request is admitted at once (admission.admit), never held as pending.
 *
 * | view answer                       | TFTP                | HTTP                 |
 * |-----------------------------------|---------------------|----------------------|
 * | found                             | the file            | 200 / 206 / 304 / 416|
 * | refused (name, path, disk)        | ERROR 2             | 403                  |
 * | not found anywhere                | ERROR 1             | 404                  |
 * | disk not ready, server busy       | ERROR 0             | 503 + Retry-After    |
 * | another method                    | (WRQ: ERROR 2)      | 405 + Allow          |
 * | a target that is not a path       | (malformed packet)  | 400                  |
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { canonicalIp } from '../../../common/src/nbd-config.ts';
import { clientKeyOf } from '../admission/admission.ts';
import type { ProvenAdmission, Ticket } from '../admission/admission.ts';
import type { DataplaneMetrics } from '../metrics.ts';
import { identifyRequest, identityFields } from '../sources/client-identity.ts';
import type { SerialLookup } from '../sources/client-identity.ts';
import type { FileSource, OpenedFile } from '../sources/source.ts';
import { resolveInView } from '../sources/view.ts';
import type { ListenSpec } from '../tftp/listen-spec.ts';
import { ClientLastSeen } from '../tftp/server-support.ts';
import { HttpListeners } from './http-listeners.ts';
import { parseRequestTarget } from './request-target.ts';
import { planResponse } from './response-plan.ts';
import { SinkClosedError, streamBufferBytes, streamRange } from './stream-file.ts';

/** Bytes read from the source at once; two per transfer (stream-file.ts). */
export const HTTP_CHUNK_BYTES = 256 * 1024;
/**
 * Bytes handed to the socket per write: a slice taken is progress, so a client reading
 * at 16 KiB per --stall-timeout (30 s: 0.55 KiB/s) or faster is never taken for stalled.
 */
export const HTTP_SLICE_BYTES = 16 * 1024;
/** Retry-After of a 503: the disk is still connecting, the server or the client is busy. */
export const RETRY_AFTER_S = 5;

export interface HttpBootOptions {
  sources: readonly FileSource[];
  serials?: SerialLookup | undefined;
  /** Shared with the TFTP server: one set of limits, one memory budget (docs/admission.md). */
  admission: ProvenAdmission;
  metrics: DataplaneMetrics;
  logger: Logger;
  listen: ListenSpec;
  port: number;
  /** A transfer that makes no progress for this long is abandoned (--stall-timeout). */
  stallTimeoutMs: number;
  /** TCP connections at once, overall and from one address; more are closed at once. */
  maxConnections: number;
  maxConnectionsPerClient: number;
  /** False: no request is answered yet (the config snapshot gate): 503 + Retry-After. */
  ready?: () => boolean;
  /**
   * Buffers of `chunkBytes` a transfer holds besides its two stream buffers, reserved with
   * them: in worker mode, the one its reads cross the thread boundary in
   * (workers/remote-files.ts), which is as large as a read, i.e. a chunk.
   */
  transitBuffers?: number;
  chunkBytes?: number;
  headersTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
}

type Outcome = 'completed' | 'aborted' | 'failed' | 'timeout';

const STATUS_TEXT: Record<number, string> = {
  400: 'bad request',
  403: 'access violation',
  404: 'file not found',
  405: 'method not allowed',
  503: 'service unavailable',
};

export class HttpBootServer {
  private readonly listeners: HttpListeners;
  private readonly connectionsPerClient = new Map<string, number>();
  private connections = 0;
  private readonly active = new Set<ServerResponse>();
  private readonly lastSeen: ClientLastSeen;
  private readonly chunkBytes: number;
  private draining = false;
  private idle: (() => void) | null = null;

  constructor(private readonly opts: HttpBootOptions) {
    this.chunkBytes = opts.chunkBytes ?? HTTP_CHUNK_BYTES;
    this.lastSeen = new ClientLastSeen(opts.metrics.clientLastTransfer, 4096);
    this.listeners = new HttpListeners(
      opts.listen,
      opts.port,
      (req, res) => this.onRequest(req, res),
      (socket) => this.onConnection(socket),
      {
        headersTimeoutMs: opts.headersTimeoutMs ?? 10_000,
        keepAliveTimeoutMs: opts.keepAliveTimeoutMs ?? 5_000,
      },
      opts.logger,
    );
  }

  get port(): number {
    return this.listeners.port;
  }
  get addresses(): string[] {
    return this.listeners.addresses;
  }
  get activeTransfers(): number {
    return this.active.size;
  }

  start(): Promise<void> {
    return this.listeners.start();
  }

  /** Stops taking requests; running transfers get `graceMs`, then every connection closes. */
  async stop(graceMs: number): Promise<void> {
    this.draining = true;
    this.listeners.stopAccepting();
    if (this.active.size > 0)
      await Promise.race([
        new Promise<void>((r) => (this.idle = r)),
        new Promise<void>((r) => setTimeout(r, graceMs).unref()),
      ]);
    this.listeners.closeAll();
  }

  /** Connection limits: a client (or everyone) past them is disconnected before any request. */
  private onConnection(socket: Socket): void {
    const key = clientKeyOf(socket.remoteAddress ?? '');
    const mine = this.connectionsPerClient.get(key) ?? 0;
    if (this.connections >= this.opts.maxConnections || mine >= this.opts.maxConnectionsPerClient) {
      const reason = this.connections >= this.opts.maxConnections ? 'server-busy' : 'client-busy';
      this.opts.metrics.refused.inc({ reason, protocol: 'http' });
      // Debug: a connection flood must not become a log flood (the metric counts each).
      this.opts.logger.debug({ client: key, reason, protocol: 'http' }, 'Connection refused');
      socket.destroy();
      return;
    }
    this.connections += 1;
    this.connectionsPerClient.set(key, mine + 1);
    socket.once('close', () => {
      this.connections -= 1;
      const n = (this.connectionsPerClient.get(key) ?? 1) - 1;
      if (n <= 0) this.connectionsPerClient.delete(key);
      else this.connectionsPerClient.set(key, n);
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    const address = req.socket.remoteAddress ?? '';
    const client = canonicalIp(address) ?? address;
    const base = {
      client,
      clientPort: req.socket.remotePort,
      file: req.url ?? '',
      protocol: 'http',
    };
    void this.answer(req, res, base, started).catch((err: Error) => {
      this.opts.logger.error({ ...base, err: err.message }, 'Request failed unexpectedly');
      if (!res.headersSent) this.reply(res, 500, {});
      else res.destroy();
    });
  }

  private async answer(
    req: IncomingMessage,
    res: ServerResponse,
    base: { client: string; clientPort: number | undefined; file: string; protocol: string },
    started: number,
  ): Promise<void> {
    if (this.draining) return this.refuse(res, 503, 'shutting-down', base);
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') {
      return this.refuse(res, 405, 'method', { ...base, method }, { allow: 'GET, HEAD' });
    }
    const target = parseRequestTarget(req.url);
    if (!target.ok)
      return this.refuse(res, 400, 'malformed-target', { ...base, detail: target.reason });
    const fields = { ...base, file: target.name };
    if (this.opts.ready && !this.opts.ready())
      return this.refuse(res, 503, 'snapshot-pending', fields);
    const identified = identifyRequest(base.client, target.name, this.opts.serials);
    if (!identified.ok) return this.refuse(res, 403, identified.reason, fields);
    const viewFields = { ...fields, ...identityFields(identified.identity, identified.request) };
    // The slot and the buffers, before any source is asked: what a request costs is bounded
    // before it costs anything.
    const admitted = this.opts.admission.admit(
      clientKeyOf(req.socket.remoteAddress ?? ''),
      streamBufferBytes(this.chunkBytes) + (this.opts.transitBuffers ?? 0) * this.chunkBytes,
    );
    if (!admitted.ok) return this.refuse(res, 503, admitted.reason, viewFields);
    this.active.add(res);
    this.opts.metrics.activeTransfers.inc({ protocol: 'http' });
    this.syncMemoryGauge();
    try {
      await this.serveFile(req, res, identified.request, viewFields, started);
    } finally {
      this.release(res, admitted.ticket);
    }
  }

  private release(res: ServerResponse, ticket: Ticket<never>): void {
    this.opts.admission.release(ticket);
    this.active.delete(res);
    this.opts.metrics.activeTransfers.dec({ protocol: 'http' });
    this.syncMemoryGauge();
    if (this.active.size === 0) this.idle?.();
  }

  private syncMemoryGauge(): void {
    this.opts.metrics.transferMemory.set(this.opts.admission.memoryReserved);
  }

  private async serveFile(
    req: IncomingMessage,
    res: ServerResponse,
    request: Parameters<typeof resolveInView>[1],
    fields: Record<string, unknown> & { client: string },
    started: number,
  ): Promise<void> {
    const abort = new AbortController();
    const onClose = () => abort.abort();
    res.once('close', onClose);
    const { result, unavailable } = await resolveInView(this.opts.sources, request, abort.signal);
    res.off('close', onClose);
    for (const u of unavailable)
      this.opts.logger.warn(
        { ...fields, source: u.source, reason: u.reason },
        'Source unavailable',
      );
    if (result.status !== 'found') {
      if (result.status === 'not-ready') {
        const detail = result.detail ? { detail: result.detail } : {};
        return this.refuse(res, 503, 'disk-not-ready', { ...fields, ...detail });
      }
      if (result.status === 'refused') return this.refuse(res, 403, result.reason, fields);
      return this.refuse(res, 404, 'not-found', fields);
    }
    const { file, source, location } = result;
    try {
      if (abort.signal.aborted || res.destroyed) return;
      const plan = planResponse(
        {
          method: req.method as 'GET' | 'HEAD',
          range: req.headers.range,
          ifRange: header(req, 'if-range'),
          ifNoneMatch: header(req, 'if-none-match'),
          ifModifiedSince: header(req, 'if-modified-since'),
        },
        { size: file.size, mtimeMs: file.mtimeMs, source, location },
      );
      const line = {
        ...fields,
        source,
        location,
        size: file.size,
        status: plan.status,
        ...(plan.headers['content-range'] ? { range: plan.headers['content-range'] } : {}),
      };
      res.writeHead(plan.status, plan.headers);
      this.opts.metrics.httpResponses.inc({ code: String(plan.status) });
      if (!plan.body) {
        res.end();
        this.opts.logger.debug(line, 'Response without body sent');
        return;
      }
      const r = await this.sendBody(file, res, plan.body.start, plan.body.end);
      this.recordFinish(line, r, performance.now() - started);
    } finally {
      await file.close();
    }
  }

  /** Streams the body, abandoning it past the stall limit; never rejects. */
  private async sendBody(
    file: OpenedFile,
    res: ServerResponse,
    start: number,
    end: number,
  ): Promise<{ outcome: Outcome; bytes: number; reason?: string }> {
    let bytes = 0;
    let stalled = false;
    // No slice taken by the client for --stall-timeout (its window full) is a stalled
    // transfer, as TFTP's. The socket's own idle timer is left to keep-alive.
    let lastProgress = performance.now();
    const watchdog = setInterval(
      () => {
        if (performance.now() - lastProgress < this.opts.stallTimeoutMs) return;
        stalled = true;
        res.destroy();
      },
      Math.max(50, this.opts.stallTimeoutMs / 4),
    ).unref();
    try {
      bytes = await streamRange(file, res, start, end, {
        chunkBytes: this.chunkBytes,
        sliceBytes: HTTP_SLICE_BYTES,
        onProgress: () => (lastProgress = performance.now()),
      });
      await new Promise<void>((resolve, reject) => {
        res.end(() => resolve());
        res.once('close', () =>
          res.writableFinished ? resolve() : reject(new SinkClosedError('closed')),
        );
      });
      return { outcome: 'completed', bytes };
    } catch (err) {
      if (!res.destroyed) res.destroy();
      if (stalled) return { outcome: 'timeout', bytes, reason: 'no progress' };
      if (
        err instanceof SinkClosedError ||
        (err as NodeJS.ErrnoException).code === 'ERR_STREAM_DESTROYED'
      )
        return { outcome: 'aborted', bytes, reason: 'client closed the connection' };
      return { outcome: 'failed', bytes, reason: (err as Error).message };
    } finally {
      clearInterval(watchdog);
    }
  }

  private recordFinish(
    line: Record<string, unknown> & { source: string; client: string },
    r: { outcome: Outcome; bytes: number; reason?: string },
    durationMs: number,
  ): void {
    const m = this.opts.metrics;
    m.transfers.inc({ outcome: r.outcome, source: line.source, protocol: 'http' });
    m.bytesSent.inc({ source: line.source, protocol: 'http' }, r.bytes);
    const entry = {
      ...line,
      bytes: r.bytes,
      durationMs: Math.round(durationMs * 10) / 10,
      outcome: r.outcome,
    };
    if (r.outcome === 'completed') {
      m.transferDuration.observe({ protocol: 'http' }, durationMs / 1000);
      this.lastSeen.mark(line.client);
      this.opts.logger.info(entry, 'Transfer completed');
    } else this.opts.logger.warn({ ...entry, reason: r.reason }, 'Transfer failed');
  }

  private refuse(
    res: ServerResponse,
    status: 400 | 403 | 404 | 405 | 503,
    reason: string,
    fields: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): void {
    this.opts.metrics.refused.inc({ reason, protocol: 'http' });
    this.opts.logger.info({ ...fields, reason, status }, 'Request refused');
    if (status === 503) headers = { 'retry-after': String(RETRY_AFTER_S), ...headers };
    this.reply(res, status, headers);
  }

  /** A short text answer; HEAD gets its headers only (Node sends no body for HEAD). */
  private reply(res: ServerResponse, status: number, headers: Record<string, string>): void {
    if (res.headersSent || res.destroyed) return;
    const body = `${STATUS_TEXT[status] ?? 'error'}\n`;
    res.writeHead(status, {
      ...headers,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      ...(this.draining ? { connection: 'close' } : {}),
    });
    this.opts.metrics.httpResponses.inc({ code: String(status) });
    res.end(body);
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}
