/**
 * The TFTP server: takes requests on the listening sockets, resolves the file in the
 * client's view, negotiates options and runs each transfer from its own socket (TID).
 * Nothing a request does — waiting for a disk, a slow client, a malformed packet —
 * delays any other client's request.
 */
import type { RemoteInfo } from 'node:dgram';
import type { Logger } from 'pino';
import { canonicalIp } from '../../../common/src/nbd-config.ts';
import type { DataplaneMetrics } from '../metrics.ts';
import { parseRequestPath } from '../sources/request-path.ts';
import type { FileSource, OpenedFile } from '../sources/source.ts';
import { resolveInView } from '../sources/view.ts';
import { encodeError, parsePacket } from './codec.ts';
import type { RequestPacket } from './codec.ts';
import { Listeners, openTransferSocket } from './listeners.ts';
import type { ListenSpec } from './listen-spec.ts';
import { NetasciiFile, netasciiSize } from './netascii.ts';
import { negotiateOptions } from './options.ts';
import { Opcode, TFTP_ERROR_NAMES, TftpError } from './protocol.ts';
import { TransferShell } from './transfer-shell.ts';
import type { TransferResult } from './transfer-shell.ts';
import { ClientLastSeen, ErrorBudget } from './server-support.ts';

export interface ServerOptions {
  sources: readonly FileSource[];
  listen: ListenSpec;
  port: number;
  logger: Logger;
  metrics: DataplaneMetrics;
  maxTransfers: number;
  maxTransfersPerClient: number;
  /** Retransmission timeout when the client did not negotiate one. */
  timeoutMs: number;
  maxRetries: number;
  /** Bound on window × blksize a transfer keeps for retransmission. */
  maxWindowBytes: number;
  /**
   * False holds a read request back with no reply at all (the firmware retries): the
   * config snapshot gate (config/snapshot-gate.ts), which counts and logs what it drops.
   */
  admitRequest?: (client: RemoteInfo, file: string) => boolean;
}

interface ActiveTransfer {
  clientIp: string;
  key: string;
  /** Set once the transfer runs; null while the file is being resolved. */
  shell: TransferShell | null;
  abortResolve: AbortController;
}

export class TftpServer {
  private readonly listeners: Listeners;
  private readonly transfers = new Map<string, ActiveTransfer>();
  private readonly perClient = new Map<string, number>();
  private readonly errorBudget = new ErrorBudget(2000);
  private readonly lastSeen: ClientLastSeen;
  private draining = false;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: ServerOptions) {
    this.listeners = new Listeners(
      opts.listen,
      opts.port,
      (l, m, r) => this.onDatagram(l, m, r),
      opts.logger,
    );
    this.lastSeen = new ClientLastSeen(opts.metrics.clientLastTransfer, 4096);
  }

  get port(): number {
    return this.listeners.port;
  }
  get addresses(): string[] {
    return this.listeners.addresses;
  }
  get activeTransfers(): number {
    return this.transfers.size;
  }

  async start(): Promise<void> {
    await this.listeners.start();
  }

  /** Stops taking requests, lets running transfers finish for `graceMs`, then aborts the rest. */
  async stop(graceMs: number): Promise<void> {
    this.draining = true;
    this.listeners.close();
    if (this.transfers.size > 0) {
      await Promise.race([
        new Promise<void>((r) => this.idleWaiters.push(r)),
        new Promise<void>((r) => setTimeout(r, graceMs).unref()),
      ]);
    }
    for (const t of this.transfers.values()) {
      t.abortResolve.abort();
      t.shell?.abort('server shutting down');
    }
  }

  private sendError(local: string, rinfo: RemoteInfo, code: number, message: string): void {
    if (!this.errorBudget.take()) return;
    this.listeners.send(local, encodeError(code, message), rinfo.port, rinfo.address);
    this.opts.metrics.errorsSent.inc({ code: TFTP_ERROR_NAMES[code] ?? String(code) });
  }

  private refuse(
    local: string,
    rinfo: RemoteInfo,
    code: number,
    message: string,
    reason: string,
    fields: object = {},
  ): void {
    this.opts.metrics.refused.inc({ reason });
    this.opts.logger.info(
      { client: rinfo.address, clientPort: rinfo.port, reason, ...fields },
      'Request refused',
    );
    this.sendError(local, rinfo, code, message);
  }

  private onDatagram(local: string, msg: Buffer, rinfo: RemoteInfo): void {
    const parsed = parsePacket(msg);
    if (!parsed.ok) {
      this.opts.metrics.malformed.inc();
      this.opts.logger.debug(
        { client: rinfo.address, clientPort: rinfo.port, reason: parsed.error },
        'Malformed packet ignored',
      );
      if (parsed.opcode === undefined || parsed.opcode <= Opcode.Oack) {
        this.sendError(local, rinfo, TftpError.IllegalOperation, parsed.error);
      } else {
        this.sendError(local, rinfo, TftpError.IllegalOperation, 'illegal TFTP operation');
      }
      return;
    }
    const p = parsed.packet;
    switch (p.opcode) {
      case Opcode.Rrq:
        this.onReadRequest(local, p, rinfo);
        return;
      case Opcode.Wrq:
        this.refuse(local, rinfo, TftpError.AccessViolation, 'read-only server', 'write-request', {
          file: p.filename,
        });
        return;
      case Opcode.Data:
      case Opcode.Ack:
        this.sendError(local, rinfo, TftpError.UnknownTid, 'unknown transfer ID');
        return;
      case Opcode.Oack:
        this.sendError(local, rinfo, TftpError.IllegalOperation, 'illegal TFTP operation');
        return;
      case Opcode.Error:
        return; // RFC 1350: never answer an ERROR
    }
  }

  private onReadRequest(local: string, req: RequestPacket, rinfo: RemoteInfo): void {
    if (this.draining) return;
    if (this.opts.admitRequest && !this.opts.admitRequest(rinfo, req.filename)) return;
    const key = `${local}|${rinfo.address}|${rinfo.port}`;
    const existing = this.transfers.get(key);
    if (existing) {
      // While a transfer for this client port runs, an RRQ from it is a retransmission
      // (possibly delivered late by a reordering link) and is absorbed. Only once the
      // whole file was sent — the client may be done and our final ACK lost — is the
      // same port asking again a new boot (pxelinux restarts at port 49152).
      const s = existing.shell?.state;
      if (!s || s.lastBlock === null || s.sentUpTo < s.lastBlock) {
        this.opts.logger.debug(
          { client: rinfo.address, clientPort: rinfo.port, file: req.filename },
          'Duplicate request ignored',
        );
        return;
      }
      existing.shell?.abort('superseded by a new request');
    }
    const clientIp = canonicalIp(rinfo.address) ?? rinfo.address;
    const fields = { client: clientIp, clientPort: rinfo.port, file: req.filename };
    if (req.mode !== 'octet' && req.mode !== 'netascii') {
      this.refuse(
        local,
        rinfo,
        TftpError.IllegalOperation,
        `unsupported mode ${req.mode}`,
        'mode',
        fields,
      );
      return;
    }
    if (this.transfers.size >= this.opts.maxTransfers) {
      this.refuse(local, rinfo, TftpError.NotDefined, 'server busy', 'server-busy', fields);
      return;
    }
    if ((this.perClient.get(clientIp) ?? 0) >= this.opts.maxTransfersPerClient) {
      this.refuse(local, rinfo, TftpError.NotDefined, 'server busy', 'client-busy', fields);
      return;
    }
    const path = parseRequestPath(req.filename);
    if (!path.ok) {
      this.refuse(local, rinfo, TftpError.AccessViolation, 'access violation', path.reason, fields);
      return;
    }
    const entry: ActiveTransfer = {
      clientIp,
      key,
      shell: null,
      abortResolve: new AbortController(),
    };
    this.transfers.set(key, entry);
    this.perClient.set(clientIp, (this.perClient.get(clientIp) ?? 0) + 1);
    this.opts.metrics.activeTransfers.inc();
    void this.serve(local, req, rinfo, entry, path.components, fields).catch((err: Error) => {
      this.opts.logger.error({ ...fields, err: err.message }, 'Request failed unexpectedly');
      this.sendError(local, rinfo, TftpError.NotDefined, 'internal error');
      this.release(entry);
    });
  }

  private release(entry: ActiveTransfer): void {
    if (this.transfers.get(entry.key) !== entry) return;
    this.transfers.delete(entry.key);
    const n = (this.perClient.get(entry.clientIp) ?? 1) - 1;
    if (n <= 0) this.perClient.delete(entry.clientIp);
    else this.perClient.set(entry.clientIp, n);
    this.opts.metrics.activeTransfers.dec();
    if (this.transfers.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async serve(
    local: string,
    req: RequestPacket,
    rinfo: RemoteInfo,
    entry: ActiveTransfer,
    components: string[],
    fields: { client: string; clientPort: number; file: string },
  ): Promise<void> {
    const { result, unavailable } = await resolveInView(
      this.opts.sources,
      { clientIp: entry.clientIp, components, raw: req.filename },
      entry.abortResolve.signal,
    );
    for (const u of unavailable)
      this.opts.logger.warn(
        { ...fields, source: u.source, reason: u.reason },
        'Source unavailable',
      );
    if (entry.abortResolve.signal.aborted || this.transfers.get(entry.key) !== entry) {
      if (result.status === 'found') await result.file.close();
      this.release(entry);
      return;
    }
    if (result.status !== 'found') {
      this.release(entry);
      if (result.status === 'not-ready') {
        // Not an access problem: the client's disk is still connecting past --disk-wait.
        // Falling through to default/ could boot the wrong kernel, so the client retries.
        this.refuse(local, rinfo, TftpError.NotDefined, 'disk not ready', 'disk-not-ready', fields);
      } else if (result.status === 'refused') {
        this.refuse(
          local,
          rinfo,
          TftpError.AccessViolation,
          'access violation',
          result.reason,
          fields,
        );
      } else {
        this.refuse(local, rinfo, TftpError.FileNotFound, 'file not found', 'not-found', fields);
      }
      return;
    }
    const { source, location } = result;
    let file: OpenedFile = result.file;
    if (req.mode === 'netascii') file = new NetasciiFile(file, await netasciiSize(file));
    const negotiated = negotiateOptions(req.options, file.size, {
      maxWindowBytes: this.opts.maxWindowBytes,
    });
    const socket = await openTransferSocket(local, rinfo).catch(async (err: Error) => {
      await file.close();
      throw err;
    });
    const shell = new TransferShell(
      socket,
      file,
      {
        blksize: negotiated.blksize,
        windowsize: negotiated.windowsize,
        timeoutMs:
          negotiated.timeoutS !== undefined ? negotiated.timeoutS * 1000 : this.opts.timeoutMs,
        maxRetries: this.opts.maxRetries,
        sendOack: negotiated.oack.size > 0,
        tsizeRequested: negotiated.tsizeRequested,
        readAheadBlocks: Math.max(2 * negotiated.windowsize, 2),
      },
      negotiated.oack,
      {
        onRetransmit: () => this.opts.metrics.retransmits.inc(),
        onErrorSent: (code) =>
          this.opts.metrics.errorsSent.inc({ code: TFTP_ERROR_NAMES[code] ?? String(code) }),
        onFinish: (r) => {
          this.release(entry);
          this.recordFinish(r, {
            ...fields,
            source,
            location,
            size: file.size,
            blksize: negotiated.blksize,
            windowsize: negotiated.windowsize,
          });
        },
      },
    );
    entry.shell = shell;
    shell.start();
  }

  private recordFinish(
    r: TransferResult,
    f: Record<string, unknown> & { source: string; client: string },
  ): void {
    const m = this.opts.metrics;
    const line = {
      ...f,
      bytes: r.bytes,
      durationMs: Math.round(r.durationMs * 10) / 10,
      retransmits: r.retransmits,
      outcome: r.outcome,
    };
    if (r.outcome === 'probe') {
      m.probes.inc();
      this.opts.logger.debug(line, 'Size probe answered');
      return;
    }
    m.transfers.inc({ outcome: r.outcome, source: f.source });
    if (r.outcome === 'completed') {
      m.bytesSent.inc({ source: f.source }, r.bytes);
      m.transferDuration.observe(r.durationMs / 1000);
      this.lastSeen.mark(f.client);
      this.opts.logger.info(line, 'Transfer completed');
    } else {
      this.opts.logger.warn({ ...line, reason: r.detail }, 'Transfer failed');
    }
  }
}
