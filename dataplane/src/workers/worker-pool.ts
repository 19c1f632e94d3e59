/**
 * The main thread's side of worker mode (docs/performance.md): N worker threads, each serving
 * the clients routed to it (client-routing.ts). The pool hands each read request to its
 * client's worker, relays each config to its client's worker, answers the workers'
 * admission requests from the one authority (admission-authority.ts), sends their
 * refusals from the listening sockets, gathers their metrics and status, watches that each
 * answers (a stuck worker fails /healthz), restarts a worker that died — its clients'
 * configs are given to the new one — and drains them all on shutdown.
 */
import type { RemoteInfo } from 'node:dgram';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { NbdConfig } from '../../../common/src/nbd-config.ts';
import type { AdmissionLimits, ProvenAdmission } from '../admission/admission.ts';
import type { HealthVerdict } from '../health/health-monitor.ts';
import type { DataplaneMetrics } from '../metrics.ts';
import type { RequestPacket } from '../tftp/codec.ts';
import { AdmissionAuthority } from './admission-authority.ts';
import { ClientRouting } from './client-routing.ts';
import type { FromWorker, MetricsJson, ToWorker, WorkerStatus } from './messages.ts';
import { RemoteViewSource } from './remote-files.ts';
import type { WorkerData } from './worker-main.ts';

export interface WorkerPoolOptions {
  workers: number;
  /** The daemon's command line, parsed again by every worker. */
  argv: string[];
  logger: Logger;
  /** The main thread's metrics: admission gauges, worker gauges. */
  metrics: DataplaneMetrics;
  admission: AdmissionLimits;
  maxSessions: number;
  /** A worker that answers no ping for this long fails /healthz. */
  stallLimitMs: number;
  /** Sends a worker's refusal from the listening socket `local` (the main thread's). */
  sendFromListener(local: string, packet: Buffer, port: number, address: string): void;
  /** The listening port and addresses, for the workers' view of them. */
  listening(): { port: number; addresses: string[] };
  /** HTTP boot's waits on a worker: an open (--disk-wait and the open budget fit in it), a read. */
  fileTimeouts: { openMs: number; readMs: number };
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  ready: boolean;
  lastPong: number;
  transfersActive: number;
  restarts: number;
  startedAt: number;
}

const ERROR_REPLIES_PER_SECOND = 2000;
const COLLECT_TIMEOUT_MS = 5000;
/** How long a worker may take to start (its disks' first scan included). */
const START_TIMEOUT_MS = 60_000;

export class WorkerPool {
  readonly routing: ClientRouting;
  /** HTTP boot's view of every client, each read in its client's worker (remote-files.ts). */
  readonly files: RemoteViewSource;
  private readonly slots: Slot[];
  private readonly authority: AdmissionAuthority;
  /** The latest config of every client: given again to a worker that restarts. */
  private readonly configs = new Map<string, { config: NbdConfig; file: string }>();
  private readonly collectors = new Map<number, (worker: number, m: FromWorker) => void>();
  private seq = 0;
  private stopping = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private drainWaiters = new Set<number>();
  private onDrained: (() => void) | undefined;

  constructor(private readonly opts: WorkerPoolOptions) {
    this.routing = new ClientRouting(opts.workers);
    this.slots = Array.from({ length: opts.workers }, (_, index) => ({
      index,
      worker: undefined,
      ready: false,
      lastPong: Date.now(),
      transfersActive: 0,
      restarts: 0,
      startedAt: Date.now(),
    }));
    this.authority = new AdmissionAuthority(opts.admission, (ref) =>
      this.post(ref.worker, { type: 'evicted', ticket: ref.ticket }),
    );
    opts.metrics.transferMemoryBudget.set(this.authority.memoryBudget);
    opts.metrics.workers.set(opts.workers);
    this.files = new RemoteViewSource({
      workerOf: (clientIp) => this.routing.workerOf(clientIp),
      post: (worker, m, transfer) => this.post(worker, m, transfer),
      openTimeoutMs: opts.fileTimeouts.openMs,
      readTimeoutMs: opts.fileTimeouts.readMs,
    });
  }

  /** The one admission of the process, for HTTP boot on this thread (one budget for both). */
  get sharedAdmission(): ProvenAdmission {
    return this.authority.proven;
  }

  /** Starts every worker; resolves once all are ready, rejects if one cannot start. */
  async start(): Promise<void> {
    await Promise.all(this.slots.map((s) => this.spawn(s)));
    this.heartbeat = setInterval(() => this.ping(), 1000);
    this.heartbeat.unref();
  }

  get transfersActive(): number {
    return this.slots.reduce((n, s) => n + s.transfersActive, 0);
  }

  /**
   * A read request (past the main thread's gates) to the worker serving the client whose
   * view it is served from: `viewOf`, the request's source address unless it names a serial.
   */
  handOff(local: string, req: RequestPacket, rinfo: RemoteInfo, viewOf: string): void {
    this.post(this.routing.workerOf(viewOf), { type: 'request', local, req, rinfo });
  }

  configSet(clientIp: string, config: NbdConfig, file: string): void {
    this.configs.set(clientIp, { config, file });
    this.post(this.routing.assign(clientIp), { type: 'config', clientIp, config, file });
    this.broadcast({ type: 'serial', clientIp, serial: config.serial });
  }

  configRemoved(clientIp: string): void {
    this.configs.delete(clientIp);
    const worker = this.routing.workerOf(clientIp);
    this.routing.unassign(clientIp);
    this.post(worker, { type: 'config-removed', clientIp });
    this.broadcast({ type: 'serial', clientIp, serial: undefined });
  }

  private broadcast(m: ToWorker): void {
    for (const s of this.slots) this.post(s.index, m);
  }

  /** Liveness of the workers: each must have answered a ping within the stall limit. */
  health(): HealthVerdict {
    const now = Date.now();
    for (const s of this.slots) {
      const silentMs = now - s.lastPong;
      if (s.ready && silentMs > this.opts.stallLimitMs)
        return { ok: false, reason: `worker ${s.index} answered nothing for ${silentMs} ms` };
    }
    return { ok: true };
  }

  /** Every worker's metrics and status (a worker that does not answer in time is left out). */
  async collect(): Promise<{ metrics: MetricsJson[]; statuses: WorkerStatus[] }> {
    const seq = ++this.seq;
    const live = this.slots.filter((s) => s.ready);
    const metrics: MetricsJson[] = [];
    const statuses: WorkerStatus[] = [];
    await new Promise<void>((resolve) => {
      let left = live.length;
      if (left === 0) return resolve();
      const timer = setTimeout(resolve, COLLECT_TIMEOUT_MS);
      this.collectors.set(seq, (_worker, m) => {
        if (m.type !== 'collected') return;
        metrics.push(m.metrics);
        statuses.push(m.status);
        if (--left === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
      for (const s of live) this.post(s.index, { type: 'collect', seq });
    });
    this.collectors.delete(seq);
    return { metrics, statuses: statuses.sort((a, b) => a.worker - b.worker) };
  }

  /** Shutdown: every worker stops taking requests, finishes for `graceMs`, closes its disks. */
  async drain(graceMs: number): Promise<void> {
    this.stopping = true;
    clearInterval(this.heartbeat);
    const live = this.slots.filter((s) => s.ready && s.worker);
    this.drainWaiters = new Set(live.map((s) => s.index));
    await new Promise<void>((resolve) => {
      if (live.length === 0) return resolve();
      const timer = setTimeout(resolve, graceMs + 10_000);
      this.onDrained = () => {
        clearTimeout(timer);
        resolve();
      };
      for (const s of live) this.post(s.index, { type: 'drain', graceMs });
    });
    await Promise.all(this.slots.map((s) => s.worker?.terminate()));
  }

  /** False when the worker is not running (between a crash and its restart): nothing sent. */
  private post(index: number, m: ToWorker, transfer?: ArrayBuffer[]): boolean {
    const worker = this.slots[index]?.worker;
    if (!worker) return false;
    worker.postMessage(m, transfer);
    return true;
  }

  private spawn(slot: Slot): Promise<void> {
    const { port, addresses } = this.opts.listening();
    const data: WorkerData = {
      index: slot.index,
      workers: this.opts.workers,
      argv: this.opts.argv,
      port,
      addresses,
      errorRepliesPerSecond: Math.ceil(ERROR_REPLIES_PER_SECOND / this.opts.workers),
      maxSessions: Math.ceil(this.opts.maxSessions / this.opts.workers),
    };
    const worker = startWorkerThread(data);
    slot.worker = worker;
    slot.ready = false;
    slot.startedAt = Date.now();
    // Its clients' configs, in order before any request (one port, messages in order).
    for (const [clientIp, c] of this.configs) {
      const serial: ToWorker = { type: 'serial', clientIp, serial: c.config.serial };
      worker.postMessage(serial);
      if (this.routing.workerOf(clientIp) === slot.index)
        worker.postMessage({ type: 'config', clientIp, config: c.config, file: c.file });
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(workerError(slot.index, `not ready within ${START_TIMEOUT_MS} ms`)),
        START_TIMEOUT_MS,
      );
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          clearTimeout(timer);
          slot.ready = true;
          slot.lastPong = Date.now();
          this.opts.logger.info({ worker: slot.index }, 'Worker started');
          resolve();
        } else if (m.type === 'failed') {
          clearTimeout(timer);
          reject(workerError(slot.index, m.message));
          // A worker that could not start stays alive on its port: end it, so that its exit
          // restarts it after the backoff (a restart that fails is tried again, not left
          // holding its clients' requests until they time out).
          void worker.terminate();
        } else this.onMessage(slot, m);
      });
      worker.on('error', (err) =>
        this.opts.logger.error({ worker: slot.index, err: err.message }, 'Worker failed'),
      );
      worker.on('exit', (code) => {
        clearTimeout(timer);
        if (slot.worker === worker) this.onExit(slot, code);
        reject(workerError(slot.index, `exited with code ${code} while starting`));
      });
    });
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    const w = slot.index;
    switch (m.type) {
      case 'send': {
        const packet = Buffer.from(m.packet.buffer, m.packet.byteOffset, m.packet.byteLength);
        this.opts.sendFromListener(m.local, packet, m.port, m.address);
        return;
      }
      case 'admit':
        this.post(w, { type: 'admitted', id: m.id, answer: this.authority.request(w, m.client) });
        this.syncGauges();
        return;
      case 'prove':
        this.post(w, {
          type: 'proved',
          id: m.id,
          answer: this.authority.prove(w, m.ticket, m.bytes),
        });
        this.syncGauges();
        return;
      case 'release':
        this.authority.release(w, m.ticket);
        this.syncGauges();
        return;
      case 'pong':
        slot.lastPong = Date.now();
        slot.transfersActive = m.transfersActive;
        return;
      case 'collected':
        this.collectors.get(m.seq)?.(w, m);
        return;
      case 'drained':
        this.drainWaiters.delete(w);
        if (this.drainWaiters.size === 0) this.onDrained?.();
        return;
      case 'file-opened':
      case 'file-read-done':
      case 'file-read-failed':
        this.files.onAnswer(w, m);
        return;
    }
  }

  /**
   * A worker died (an uncaught error in it): its transfers are gone — their clients retry —
   * and what it held in admission is freed. It starts again, with its clients' configs,
   * after a backoff that grows while it keeps dying young.
   */
  private onExit(slot: Slot, code: number): void {
    slot.ready = false;
    slot.worker = undefined;
    slot.transfersActive = 0;
    this.authority.releaseWorker(slot.index);
    this.files.workerGone(slot.index);
    this.syncGauges();
    if (this.stopping) return;
    const young = Date.now() - slot.startedAt < 60_000;
    slot.restarts = young ? slot.restarts + 1 : 1;
    const delayMs = Math.min(30_000, 500 * 2 ** (slot.restarts - 1));
    this.opts.metrics.workerRestarts.inc();
    this.opts.logger.error({ worker: slot.index, code, restartInMs: delayMs }, 'Worker exited');
    setTimeout(() => {
      if (this.stopping) return;
      this.spawn(slot).catch((err: Error) =>
        this.opts.logger.error({ worker: slot.index, err: err.message }, 'Worker restart failed'),
      );
    }, delayMs).unref();
  }

  private ping(): void {
    const seq = ++this.seq;
    for (const s of this.slots) if (s.ready) this.post(s.index, { type: 'ping', seq });
  }

  private syncGauges(): void {
    this.opts.metrics.transfersPending.set(this.authority.pending);
    this.opts.metrics.transferMemory.set(this.authority.memoryReserved);
  }
}

function workerError(index: number, message: string): Error {
  return Object.assign(new Error(`worker ${index}: ${message}`), { code: 'RTFTP_ERR_WORKER' });
}

/**
 * Each worker's V8 young generation, at most. Left to V8, every isolate grows its own under a
 * burst of requests that live a while (a spoofed flood of unproven ones): two workers grew
 * the process by 56-65 MB in tftp-admission-flood.test.ts, 37 MB with this cap, where one
 * thread grows by 29-40 MB. The boot storm's throughput did not move beyond its run-to-run
 * spread (docs/performance.md).
 */
const WORKER_YOUNG_GENERATION_MB = 16;

/**
 * Starts worker-main in a thread. From a checkout the sources run through tsx, as the main
 * thread's do (bin/run-entry.js): the thread registers tsx before importing its entry.
 */
function startWorkerThread(data: WorkerData): Worker {
  const fromSources = import.meta.url.endsWith('.ts');
  const entry = new URL(`./worker-main.${fromSources ? 'ts' : 'js'}`, import.meta.url).href;
  const tsxApi = fromSources ? import.meta.resolve('tsx/esm/api') : '';
  const bootstrap = `
    const { workerData } = require('node:worker_threads');
    (async () => {
      if (workerData.tsxApi) (await import(workerData.tsxApi)).register();
      await import(workerData.entry);
    })().catch((err) => process.nextTick(() => { throw err; }));
  `;
  return new Worker(bootstrap, {
    eval: true,
    workerData: { ...data, entry, tsxApi },
    resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
  });
}
