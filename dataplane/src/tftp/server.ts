/**
 * The TFTP server: takes requests on the listening sockets, resolves the file in the
 * client's view, negotiates options and runs each transfer from its own socket (TID).
 * Nothing a request does — waiting for a disk, a slow client, a malformed packet —
 * delays any other client's request. Which request may start, and what it may cost, is
 * admission's to say (../admission/, docs/admission.md): a request stays unproven, and
 * cheap, until its client's first ACK.
 */
import type { RemoteInfo } from 'node:dgram';
import type { Logger } from 'pino';
import { canonicalIp } from '../../../common/src/nbd-config.ts';
import { TransferAdmission, clientKeyOf, subnetOf } from '../admission/admission.ts';
import type {
  AdmissionLimits,
  ProveResult,
  ProvenAdmission,
  RequestResult,
  Ticket,
} from '../admission/admission.ts';
import type { DataplaneMetrics } from '../metrics.ts';
import { identifyRequest, identityFields } from '../sources/client-identity.ts';
import type { MatchedIdentity, SerialLookup } from '../sources/client-identity.ts';
import type { FileSource, ViewRequest } from '../sources/source.ts';
import { resolveInView } from '../sources/view.ts';
import { encodeError, parsePacket } from './codec.ts';
import type { RequestPacket } from './codec.ts';
import { Listeners, openTransferSocket } from './listeners.ts';
import type { ListenSpec } from './listen-spec.ts';
import { BlockReader } from './block-reader.ts';
import type { ReadableFile } from './block-reader.ts';
import { NETASCII_BUFFER_BYTES, NetasciiFile, netasciiSize } from './netascii.ts';
import { negotiateOptions } from './options.ts';
import { Opcode, TFTP_ERROR_NAMES, TftpError } from './protocol.ts';
import { TransferShell } from './transfer-shell.ts';
import type { TransferResult } from './transfer-shell.ts';
import {
  ClientLastSeen,
  ErrorBudget,
  EvictionSummary,
  requestFromBusyPort,
} from './server-support.ts';

export interface ServerOptions {
  sources: readonly FileSource[];
  listen: ListenSpec;
  port: number;
  logger: Logger;
  metrics: DataplaneMetrics;
  /** Which transfers may start and what they may cost (docs/admission.md). */
  admission: AdmissionLimits;
  /** Retransmission timeout when the client did not negotiate one. */
  timeoutMs: number;
  maxRetries: number;
  /**
   * Largest `timeout` option accepted (seconds); also the cap of the backed-off
   * retransmission interval: the longest the server stays silent towards a client.
   */
  maxTimeoutS: number;
  /** A transfer that makes no progress for this long is abandoned. */
  stallTimeoutMs: number;
  /** Bound on window × blksize a transfer keeps for retransmission. */
  maxWindowBytes: number;
  /**
   * False holds a read request back with no reply at all (the firmware retries): the
   * config snapshot gate (config/snapshot-gate.ts), which counts and logs what it drops.
   */
  admitRequest?: (client: RemoteInfo, file: string) => boolean;
  /** Raspberry Pi serials: a `<serial>/…` request is served from that client's view. */
  serials?: SerialLookup;
  // Worker mode (docs/performance.md): which thread does what.
  /**
   * Main thread: a read request that passed the gates above goes to the worker that
   * serves its client instead of being served here.
   */
  handOff?: (local: string, req: RequestPacket, rinfo: RemoteInfo) => void;
  /** A worker: where requests arrive (through `acceptRequest`) and refusals leave from. */
  listeners?: RequestListeners;
  /** A worker: its proxy to the one admission authority on the main thread. */
  createAdmission?: <T>(limits: AdmissionLimits) => AdmissionDesk<T>;
  /** ERROR replies per second this server may send (default 2000; split among workers). */
  errorRepliesPerSecond?: number;
}

/** The listening side: where read requests arrive and where refusals are sent from. */
export interface RequestListeners {
  readonly port: number;
  readonly addresses: string[];
  /** The smallest receive buffer of the listening sockets (absent: not sockets of ours). */
  readonly receiveBufferBytes?: number;
  start(): Promise<void>;
  send(local: string, buf: Buffer, port: number, address: string): void;
  close(): void;
}

/**
 * Admission as the server uses it: TransferAdmission itself in one process, or in a worker
 * a proxy to the one authority on the main thread, which answers later (workers/).
 */
export interface AdmissionDesk<T> {
  request(client: string, data: T): RequestResult<T> | Promise<RequestResult<T>>;
  prove(ticket: Ticket<T>, bytes: number): ProveResult | Promise<ProveResult>;
  release(ticket: Ticket<T>): void;
  /** A proxy: pending requests the authority displaced later, to be ended here. */
  onEvicted?(handler: (data: T) => void): void;
  /** The authority's bookkeeping, for the gauges (a proxy has none). */
  readonly pending?: number;
  readonly memoryReserved?: number;
}

interface ActiveTransfer {
  clientIp: string;
  key: string;
  /** What was asked (file, mode, options): a repeat is the same request. */
  request: string;
  /** Set once the transfer runs; null while the file is being resolved. */
  shell: TransferShell | null;
  abortResolve: AbortController;
  /**
   * Its place in admission: pending until the client's first ACK, then active. Unset
   * until admission answered (at once in one process, a message later in a worker).
   */
  ticket?: Ticket<ActiveTransfer>;
  /** Released (ended, evicted or refused): nothing more may be done for it. */
  released: boolean;
}

/** What serving one admitted request takes: where it came from, its entry, its path. */
type ServeArgs = [
  local: string,
  req: RequestPacket,
  rinfo: RemoteInfo,
  entry: ActiveTransfer,
  view: { request: ViewRequest; identity: MatchedIdentity },
  fields: { client: string; clientPort: number; file: string },
];

/** A request's file, mode and options as one comparable string. */
function requestIdentity(req: RequestPacket): string {
  return JSON.stringify([req.filename, req.mode, [...req.options]]);
}

export class TftpServer {
  private readonly listeners: RequestListeners;
  private readonly transfers = new Map<string, ActiveTransfer>();
  private readonly admission: AdmissionDesk<ActiveTransfer>;
  private readonly evictions: EvictionSummary;
  private readonly errorBudget: ErrorBudget;
  private readonly lastSeen: ClientLastSeen;
  private draining = false;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: ServerOptions) {
    this.listeners =
      opts.listeners ??
      new Listeners(opts.listen, opts.port, (l, m, r) => this.onDatagram(l, m, r), opts.logger);
    this.errorBudget = new ErrorBudget(opts.errorRepliesPerSecond ?? 2000);
    this.lastSeen = new ClientLastSeen(opts.metrics.clientLastTransfer, 4096);
    this.admission = opts.createAdmission
      ? opts.createAdmission<ActiveTransfer>(opts.admission)
      : new TransferAdmission<ActiveTransfer>(opts.admission);
    this.admission.onEvicted?.((victim) => this.evict(victim));
    this.evictions = new EvictionSummary(opts.logger);
    if (!opts.createAdmission)
      opts.metrics.transferMemoryBudget.set(opts.admission.memoryBudgetBytes);
  }

  get port(): number {
    return this.listeners.port;
  }
  get addresses(): string[] {
    return this.listeners.addresses;
  }
  /** The listening sockets' receive buffer (0: unknown, or relayed listeners). */
  get listenReceiveBufferBytes(): number {
    return this.listeners.receiveBufferBytes ?? 0;
  }
  get activeTransfers(): number {
    return this.transfers.size;
  }
  /** This server's admission, for HTTP boot to share: one budget for both protocols. */
  get sharedAdmission(): ProvenAdmission {
    // In worker mode HTTP boot shares the authority's instead (worker-pool.ts).
    if (!(this.admission instanceof TransferAdmission))
      throw new Error('HTTP boot shares admission only with a server that owns it');
    return this.admission;
  }

  async start(): Promise<void> {
    await this.listeners.start();
  }

  /** Stops taking requests, lets running transfers finish for `graceMs`, then aborts the rest. */
  async stop(graceMs: number): Promise<void> {
    this.draining = true;
    this.listeners.close();
    this.evictions.flush();
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

  /** Worker mode: a worker's refusal, sent from the listening socket it names. */
  sendFromListener(local: string, packet: Buffer, port: number, address: string): void {
    this.listeners.send(local, packet, port, address);
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
    this.opts.metrics.refused.inc({ reason, protocol: 'tftp' });
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
    if (this.opts.handOff) return this.opts.handOff(local, req, rinfo);
    this.acceptRequest(local, req, rinfo);
  }

  /**
   * A read request to serve here: from the listeners, or (in a worker) handed over by the
   * main thread, which has already applied the gates of `onReadRequest`.
   */
  acceptRequest(local: string, req: RequestPacket, rinfo: RemoteInfo): void {
    if (this.draining) return;
    const key = `${local}|${rinfo.address}|${rinfo.port}`;
    const request = requestIdentity(req);
    const existing = this.transfers.get(key);
    if (existing) {
      const meaning = requestFromBusyPort({
        sameRequest: existing.request === request,
        state: existing.shell?.state ?? null,
      });
      if (meaning !== 'supersede') {
        // It may mean our first packet never reached the client: the transfer decides.
        if (meaning === 'repeat') existing.shell?.requestRepeated();
        this.opts.logger.debug(
          { client: rinfo.address, clientPort: rinfo.port, file: req.filename },
          'Duplicate request ignored',
        );
        return;
      }
      existing.abortResolve.abort();
      if (existing.shell) existing.shell.supersede();
      else this.release(existing);
    }
    const clientIp = canonicalIp(rinfo.address) ?? rinfo.address;
    const fields = {
      client: clientIp,
      clientPort: rinfo.port,
      file: req.filename,
      protocol: 'tftp',
    };
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
    const path = identifyRequest(clientIp, req.filename, this.opts.serials);
    if (!path.ok) {
      this.refuse(local, rinfo, TftpError.AccessViolation, 'access violation', path.reason, fields);
      return;
    }
    const entry: ActiveTransfer = {
      clientIp,
      key,
      request,
      shell: null,
      abortResolve: new AbortController(),
      released: false,
    };
    // Held while admission answers, so that a repeat of the request is absorbed meanwhile.
    this.transfers.set(key, entry);
    this.opts.metrics.activeTransfers.inc({ protocol: 'tftp' });
    void this.admitAndServe(local, req, rinfo, entry, path, fields).catch((err: Error) => {
      this.opts.logger.error({ ...fields, err: err.message }, 'Request failed unexpectedly');
      this.sendError(local, rinfo, TftpError.NotDefined, 'internal error');
      this.release(entry);
    });
  }

  private async admitAndServe(...args: ServeArgs): Promise<void> {
    const [local, , rinfo, entry, , fields] = args;
    const admitted = await this.admission.request(clientKeyOf(rinfo.address), entry);
    if (!admitted.ok) {
      if (entry.released) return;
      this.release(entry);
      this.refuse(local, rinfo, TftpError.NotDefined, 'server busy', admitted.reason, fields);
      return;
    }
    entry.ticket = admitted.ticket;
    // Superseded or shut down while admission answered.
    if (entry.released) return void this.admission.release(admitted.ticket);
    for (const victim of admitted.evicted) this.evict(victim);
    this.syncAdmissionGauges();
    await this.serve(...args);
  }

  /**
   * Admission displaced this unproven request to make room for a newer one. A client
   * that already has our first packet gets ERROR 0 from the transfer's port (else it
   * would wait on a port that no longer answers); one still being resolved has had
   * nothing yet and simply retransmits its RRQ.
   */
  private evict(entry: ActiveTransfer): void {
    this.opts.metrics.refused.inc({ reason: 'pending-evicted', protocol: 'tftp' });
    this.opts.logger.debug({ client: entry.clientIp }, 'Unproven request evicted');
    this.evictions.note(entry.ticket?.subnet ?? subnetOf(entry.clientIp));
    entry.abortResolve.abort();
    if (entry.shell) entry.shell.refuse('server busy');
    else this.release(entry);
  }

  private release(entry: ActiveTransfer): void {
    if (entry.released) return;
    entry.released = true;
    // Without a ticket yet, admitAndServe releases the one admission gives it.
    if (entry.ticket) this.admission.release(entry.ticket);
    this.syncAdmissionGauges();
    if (this.transfers.get(entry.key) === entry) this.transfers.delete(entry.key);
    this.opts.metrics.activeTransfers.dec({ protocol: 'tftp' });
    if (this.transfers.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private syncAdmissionGauges(): void {
    // A worker's proxy keeps no counts: the authority on the main thread sets the gauges.
    const { pending, memoryReserved } = this.admission;
    if (pending === undefined || memoryReserved === undefined) return;
    this.opts.metrics.transfersPending.set(pending);
    this.opts.metrics.transferMemory.set(memoryReserved);
  }

  /** The client's first ACK: the transfer takes its slot and memory, or is refused. */
  private claim(entry: ActiveTransfer, bytes: number, fields: object): boolean | Promise<boolean> {
    const answered = (r: ProveResult): boolean => {
      this.syncAdmissionGauges();
      if (r.ok) return true;
      this.opts.metrics.refused.inc({ reason: r.reason, protocol: 'tftp' });
      this.opts.logger.info({ ...fields, reason: r.reason, bytes }, 'Request refused');
      return false;
    };
    const r = this.admission.prove(entry.ticket!, bytes);
    return r instanceof Promise ? r.then(answered) : answered(r);
  }

  private async serve(
    ...[local, req, rinfo, entry, view, requestFields]: ServeArgs
  ): Promise<void> {
    const fields = { ...requestFields, ...identityFields(view.identity, view.request) };
    const { result, unavailable } = await resolveInView(
      this.opts.sources,
      view.request,
      entry.abortResolve.signal,
    );
    for (const u of unavailable)
      this.opts.logger.warn(
        { ...fields, source: u.source, reason: u.reason },
        'Source unavailable',
      );
    // Evicted or shut down meanwhile.
    if (entry.abortResolve.signal.aborted || entry.released) {
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
    const opened = result.file;
    let file: ReadableFile = opened;
    let tsize: number | undefined = opened.size;
    let extraBytes = 0;
    if (req.mode === 'netascii') {
      // Counted only when asked (a read of the whole file), and only for small files.
      tsize = req.options.has('tsize') ? ((await netasciiSize(opened)) ?? undefined) : undefined;
      file = new NetasciiFile(opened);
      extraBytes = NETASCII_BUFFER_BYTES;
    }
    const negotiated = negotiateOptions(req.options, tsize, {
      maxWindowBytes: this.opts.maxWindowBytes,
      maxTimeoutS: this.opts.maxTimeoutS,
    });
    // Evicted meanwhile (the netascii count and the socket take turns of the event loop).
    if (entry.released) return void (await file.close());
    const socket = await openTransferSocket(local, rinfo).catch(async (err: Error) => {
      await file.close();
      throw err;
    });
    if (entry.released) {
      socket.close();
      return void (await file.close());
    }
    const readAheadBlocks = Math.max(2 * negotiated.windowsize, 2);
    const memoryBytes = BlockReader.bufferBytes(negotiated.blksize, readAheadBlocks) + extraBytes;
    const finished = {
      ...fields,
      source,
      location,
      size: opened.size,
      ...(req.mode === 'netascii' ? { mode: req.mode } : {}),
      blksize: negotiated.blksize,
      windowsize: negotiated.windowsize,
    };
    const shell = new TransferShell(
      socket,
      file,
      {
        blksize: negotiated.blksize,
        windowsize: negotiated.windowsize,
        timeoutMs:
          negotiated.timeoutS !== undefined ? negotiated.timeoutS * 1000 : this.opts.timeoutMs,
        maxIntervalMs: this.opts.maxTimeoutS * 1000,
        stallLimitMs: this.opts.stallTimeoutMs,
        maxRetries: this.opts.maxRetries,
        sendOack: negotiated.oack.size > 0,
        tsizeRequested: negotiated.tsizeRequested,
        readAheadBlocks,
      },
      negotiated.oack,
      {
        claim: () => this.claim(entry, memoryBytes, finished),
        onRetransmit: () => this.opts.metrics.retransmits.inc(),
        onErrorSent: (code) =>
          this.opts.metrics.errorsSent.inc({ code: TFTP_ERROR_NAMES[code] ?? String(code) }),
        onFinish: (r) => {
          this.release(entry);
          this.recordFinish(r, finished);
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
    // Refused by admission: already counted and logged as a refusal (or an eviction).
    if (r.outcome === 'refused') return;
    if (r.outcome === 'probe') {
      m.probes.inc();
      this.opts.logger.debug(line, 'Size probe answered');
      return;
    }
    m.transfers.inc({ outcome: r.outcome, source: f.source, protocol: 'tftp' });
    if (r.outcome === 'completed') {
      m.bytesSent.inc({ source: f.source, protocol: 'tftp' }, r.bytes);
      m.transferDuration.observe({ protocol: 'tftp' }, r.durationMs / 1000);
      this.lastSeen.mark(f.client);
      this.opts.logger.info(line, 'Transfer completed');
    } else {
      this.opts.logger.warn({ ...line, reason: r.detail }, 'Transfer failed');
    }
  }
}
