/**
 * Worker mode, as main.ts sees it (docs/performance.md): the main thread keeps the listening
 * sockets, the config snapshot gate, the one config watcher, admission and the HTTP side;
 * the workers serve. This wires the pool to them: configs relayed to their clients'
 * workers, /metrics merged across threads, /status and /healthz covering every worker.
 */
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import type { Registry } from 'prom-client';
import type { ProvenAdmission } from '../admission/admission.ts';
import type { DataplaneOptions } from '../cli.ts';
import { NbdConfigWatcher } from '../config/nbd-config-watcher.ts';
import type { SnapshotGate } from '../config/snapshot-gate.ts';
import { decideKvm } from '../disk-sources.ts';
import type { HealthVerdict } from '../health/health-monitor.ts';
import type { DataplaneMetrics } from '../metrics.ts';
import type { FileSource } from '../sources/source.ts';
import type { RequestPacket } from '../tftp/codec.ts';
import type { TftpServer } from '../tftp/server.ts';
import { serverSettingsFrom } from '../tftp/server-settings.ts';
import type { RemoteInfo } from 'node:dgram';
import { canonicalIp } from '../../../common/src/nbd-config.ts';
import { identifyRequest } from '../sources/client-identity.ts';
import type { SerialLookup } from '../sources/client-identity.ts';
import { trackSerials } from '../sources/nbd/index.ts';
import { mergeWorkerMetrics } from './metrics-merge.ts';
import { WorkerPool } from './worker-pool.ts';

export interface WorkerMode {
  /** main.ts's `disks`: no sources on the main thread; status and stop cover the workers'. */
  disks: {
    sources: FileSource[];
    serials: SerialLookup;
    status(): Promise<Record<string, unknown>>;
    stop(): Promise<void>;
  };
  /**
   * HTTP boot on this thread (remote-files.ts): one source, each client's view read in its
   * worker, and the one admission of the process.
   */
  http: { sources: FileSource[]; admission: ProvenAdmission; transitBuffers: number };
  /** What /metrics serves: the main thread's registry merged with every worker's. */
  registry: Pick<Registry, 'contentType' | 'metrics'>;
  handOff(local: string, req: RequestPacket, rinfo: RemoteInfo): void;
  /** The main thread's server: the workers' refusals leave from its listening sockets. */
  attach(server: TftpServer): void;
  health(): HealthVerdict;
  readonly transfersActive: number;
  /** Shutdown: drains every worker for `graceMs`, then stops them. */
  drain(graceMs: number): Promise<void>;
}

export async function startWorkerMode(
  opts: DataplaneOptions,
  workers: number,
  argv: string[],
  logger: Logger,
  metrics: DataplaneMetrics,
  snapshotGate?: SnapshotGate,
): Promise<WorkerMode> {
  let server: TftpServer | undefined;
  const pool = new WorkerPool({
    workers,
    argv,
    logger,
    metrics,
    admission: serverSettingsFrom(opts).admission,
    maxSessions: opts.maxSessions,
    stallLimitMs: opts.healthStallLimitS * 1000,
    sendFromListener: (local, packet, port, address) =>
      server?.sendFromListener(local, packet, port, address),
    listening: () => ({ port: server?.port ?? opts.port, addresses: server?.addresses ?? [] }),
    // An open may wait for a disk (--disk-wait) and spend its budget (--open-budget-ms); a
    // read slower than --stall-timeout would have abandoned the transfer anyway.
    fileTimeouts: {
      openMs: (opts.diskWaitS + 5) * 1000 + opts.openBudgetMs,
      readMs: opts.stallTimeoutS * 1000,
    },
  });
  // One watcher for the process (one inotify watch, one status, one count of bad configs);
  // each config goes to the worker of its client, which holds that client's disk.
  const watcher = new NbdConfigWatcher({ dir: opts.configDir, logger, metrics });
  // The whole serial directory, here too: a `<serial>/…` request goes to the worker of the
  // client that serial names (identifyRequest, the one rule), not of its source address.
  const serials = trackSerials(watcher, logger);
  watcher.on('added', (ip, config, file) => pool.configSet(ip, config, file));
  watcher.on('changed', (ip, config, _previous, file) => pool.configSet(ip, config, file));
  watcher.on('removed', (ip) => pool.configRemoved(ip));
  await pool.start();
  // As in one process: with --require-snapshot the first scan runs once the snapshot is
  // complete, before the gate admits a request (configs reach a worker before requests do).
  if (snapshotGate) snapshotGate.runBeforeOpen(() => watcher.start());
  else await watcher.start();
  decideKvm(opts, logger, metrics);
  logger.info({ workers }, 'Worker mode started');
  return {
    disks: {
      sources: [],
      serials,
      status: async () => {
        const { statuses } = await pool.collect();
        return {
          kvmAvailable: statuses.find((s) => s.kvmAvailable !== null)?.kvmAvailable ?? null,
          configs: watcher.status(),
          serials: serials.status(),
          disks: statuses.flatMap((s) => s.disks),
          workers: statuses.map((s) => ({ worker: s.worker, transfersActive: s.transfersActive })),
        };
      },
      stop: async () => watcher.stop(),
    },
    // A read crosses in a buffer of its own, one per transfer (remote-files.ts).
    http: {
      sources: [pool.files],
      admission: pool.sharedAdmission,
      transitBuffers: 1,
    },
    registry: {
      contentType: AggregatorRegistry.PROMETHEUS_CONTENT_TYPE,
      metrics: async () => {
        const [main, { metrics: fromWorkers }] = await Promise.all([
          metrics.registry.getMetricsAsJSON(),
          pool.collect(),
        ]);
        return mergeWorkerMetrics(main, fromWorkers).metrics();
      },
    },
    handOff: (local, req, rinfo) => {
      const source = canonicalIp(rinfo.address) ?? rinfo.address;
      const identified = identifyRequest(source, req.filename, serials);
      pool.handOff(local, req, rinfo, identified.ok ? identified.request.clientIp : source);
    },
    attach: (s) => {
      server = s;
    },
    health: () => pool.health(),
    get transfersActive() {
      return pool.transfersActive;
    },
    drain: (graceMs) => pool.drain(graceMs),
  };
}
