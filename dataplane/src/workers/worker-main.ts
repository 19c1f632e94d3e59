/**
 * A worker thread of worker mode (docs/performance.md): it serves the clients the main thread
 * routes to it — their views (local dirs, their NBD disks, whose sessions live here), their
 * transfers, from sockets of its own — and asks the main thread's admission authority
 * before any transfer may start or grow. Started by worker-pool.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import { Registry } from 'prom-client';
import { parseCli } from '../cli.ts';
import { startDiskSources } from '../disk-sources.ts';
import type { DiskSources } from '../disk-sources.ts';
import { createDataplaneMetrics } from '../metrics.ts';
import { SerialDirectory } from '../sources/client-identity.ts';
import { LocalDirSource } from '../sources/local-dir.ts';
import { TftpServer } from '../tftp/server.ts';
import { serverSettingsFrom } from '../tftp/server-settings.ts';
import type { FromWorker, ToWorker, WorkerStatus } from './messages.ts';
import { RelayedConfigs, RelayedListeners } from './relayed.ts';
import { RemoteAdmission } from './remote-admission.ts';
import { WorkerFileDesk } from './remote-files.ts';

export interface WorkerData {
  index: number;
  workers: number;
  /** The daemon's command line: every worker parses the same flags. */
  argv: string[];
  /** The listening port and addresses (the main thread's). */
  port: number;
  addresses: string[];
  /** ERROR replies per second this worker may send: its share of the server's budget. */
  errorRepliesPerSecond: number;
  /** Connected NBD disks this worker may hold: its share of --max-sessions. */
  maxSessions: number;
}

const port = parentPort!;
const data = workerData as WorkerData;
const post = (m: FromWorker): void => port.postMessage(m);

async function startWorker(): Promise<void> {
  const opts = parseCli(data.argv, process.env);
  if (!opts) throw new Error('no options');
  const logger = pino({
    level: opts.logLevel,
    base: { pid: process.pid, worker: data.index },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
  // Process-wide metrics (CPU, memory, build info) are the main thread's alone.
  const metrics = createDataplaneMetrics(new Registry(), false);
  const configs = new RelayedConfigs();
  // Every config's serial (the main thread routed a `<serial>/…` request here by it).
  const serials = new SerialDirectory();
  let admission: RemoteAdmission<unknown> | undefined;
  // Until the server exists, messages wait here (configs arrive while the disks start).
  const early: ToWorker[] = [];
  let handle: (m: ToWorker) => void = (m) => void early.push(m);
  port.on('message', (m: ToWorker) => handle(m));

  const disks: DiskSources = await startDiskSources(opts, logger, metrics, undefined, {
    configs,
    maxSessions: data.maxSessions,
  });
  const sources = [
    LocalDirSource.perClient(opts.root),
    ...disks.sources,
    LocalDirSource.shared(opts.root),
  ];
  // HTTP boot's files of this worker's clients, read here for the main thread's HTTP server.
  const files = new WorkerFileDesk(sources, (m, transfer) => port.postMessage(m, transfer), logger);
  const server = new TftpServer({
    ...serverSettingsFrom(opts),
    sources,
    logger,
    metrics,
    listeners: new RelayedListeners(post, data.port, data.addresses),
    createAdmission: <T>() => {
      const desk = new RemoteAdmission<T>(post);
      admission = desk as unknown as RemoteAdmission<unknown>;
      return desk;
    },
    errorRepliesPerSecond: data.errorRepliesPerSecond,
    serials,
  });
  await server.start();

  const status = (): WorkerStatus => {
    const s = disks.status() as { disks?: unknown[]; kvmAvailable?: boolean | null };
    return {
      worker: data.index,
      transfersActive: server.activeTransfers,
      disks: s.disks ?? [],
      kvmAvailable: s.kvmAvailable ?? null,
    };
  };
  handle = (m) => {
    switch (m.type) {
      case 'request':
        server.acceptRequest(m.local, m.req, m.rinfo);
        return;
      case 'config':
        configs.set(m.clientIp, m.config, m.file);
        return;
      case 'config-removed':
        configs.remove(m.clientIp);
        return;
      case 'serial':
        serials.set(m.clientIp, m.serial);
        return;
      case 'ping':
        post({ type: 'pong', seq: m.seq, transfersActive: server.activeTransfers });
        return;
      case 'collect':
        void metrics.registry
          .getMetricsAsJSON()
          .then((json) => post({ type: 'collected', seq: m.seq, metrics: json, status: status() }));
        return;
      case 'drain':
        void server
          .stop(m.graceMs)
          .then(() => files.closeAll())
          .then(() => disks.stop())
          .then(() => post({ type: 'drained' }));
        return;
      default:
        if (!files.handle(m)) admission?.handle(m);
    }
  };
  for (const m of early.splice(0)) handle(m);
  post({ type: 'ready' });
}

// Only as a worker thread: imported anywhere else (the production-dependency check imports
// every built module) it starts nothing.
if (parentPort !== null)
  await startWorker().catch((err: Error) => post({ type: 'failed', message: err.message }));
