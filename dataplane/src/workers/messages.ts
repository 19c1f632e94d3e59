/**
 * What the main thread and the workers say to each other (worker mode, docs/performance.md).
 * Every message is plain data (structured clone): no functions, no class instances.
 */
import type { RemoteInfo } from 'node:dgram';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { NbdConfig } from '../../../common/src/nbd-config.ts';
import type { ProveResult, RefusalReason } from '../admission/admission.ts';
import type { RequestPacket } from '../tftp/codec.ts';
import type { FileAnswer, FileRequest } from './remote-files.ts';

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** A worker's answer to admission's request: its ticket on the main thread, or why not. */
export type AdmitAnswer =
  { ok: true; ticket: number; subnet: string } | { ok: false; reason: RefusalReason };

/** What one worker reports for /status. */
export interface WorkerStatus {
  worker: number;
  transfersActive: number;
  disks: unknown[];
  kvmAvailable: boolean | null;
}

export type ToWorker =
  /** A read request of one of this worker's clients, past the main thread's gates. */
  | { type: 'request'; local: string; req: RequestPacket; rinfo: RemoteInfo }
  /** The config of one of this worker's clients appeared or changed. */
  | { type: 'config'; clientIp: string; config: NbdConfig; file: string }
  | { type: 'config-removed'; clientIp: string }
  /**
   * The serial a client's config declares (none: undefined), to every worker: a
   * `<serial>/…` request is identified against every config, as in one thread.
   */
  | { type: 'serial'; clientIp: string; serial: string | undefined }
  | { type: 'admitted'; id: number; answer: AdmitAnswer }
  | { type: 'proved'; id: number; answer: ProveResult }
  /** The authority displaced this pending ticket to make room for a newer request. */
  | { type: 'evicted'; ticket: number }
  | { type: 'ping'; seq: number }
  /** Metrics and status, for a scrape of /metrics or /status. */
  | { type: 'collect'; seq: number }
  /** Shutdown: stop taking requests, let transfers finish for graceMs, close the disks. */
  | { type: 'drain'; graceMs: number }
  /** HTTP boot's file opens and reads for this worker's clients (remote-files.ts). */
  | FileRequest;

export type FromWorker =
  | { type: 'ready' }
  /** Could not start (its error, one line): the main thread logs it and stops. */
  | { type: 'failed'; message: string }
  /** An ERROR reply to a request, sent from the listening socket `local`. */
  | { type: 'send'; local: string; packet: Uint8Array; port: number; address: string }
  | { type: 'admit'; id: number; client: string }
  | { type: 'prove'; id: number; ticket: number; bytes: number }
  | { type: 'release'; ticket: number }
  | { type: 'pong'; seq: number; transfersActive: number }
  | { type: 'collected'; seq: number; metrics: MetricsJson; status: WorkerStatus }
  | { type: 'drained' }
  | FileAnswer;
