/**
 * `rtftp`: the standalone TFTP boot server. Serves each client its view of the root:
 * <root>/<ip>/ → the NBD disk of <root>/<ip>.nbd → <root>/default/.
 */
import { access, constants } from 'node:fs/promises';
import pino from 'pino';
import { CliError, parseCli, usage } from './cli.ts';
import type { DataplaneOptions } from './cli.ts';
import { createDataplaneMetrics } from './metrics.ts';
import { buildHttpServer, buildProbeServer } from './http/http-server.ts';
import { listenHttp } from './http/listen.ts';
import { statusAccess } from './http/status-access.ts';
import { SnapshotGate } from './config/snapshot-gate.ts';
import { LocalDirSource } from './sources/local-dir.ts';
import type { FileSource } from './sources/source.ts';
import { TftpServer } from './tftp/server.ts';
import { readListenDrops } from './tftp/listen-drops.ts';
import { startDiskSources } from './disk-sources.ts';
import { HealthMonitor } from './health/health-monitor.ts';
import { serverSettingsFrom } from './tftp/server-settings.ts';
import { resolveWorkers } from './workers/worker-count.ts';
import { startWorkerMode } from './workers/worker-mode.ts';
import { startHttpBoot } from './http-boot/start.ts';

async function main(): Promise<number> {
  let opts: DataplaneOptions | null;
  try {
    opts = parseCli(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`rtftp: ${err.message} (see --help)\n`);
      return 2;
    }
    throw err;
  }
  if (!opts) {
    process.stdout.write(usage() + '\n');
    return 0;
  }
  const logger = pino({
    level: opts.logLevel,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
  try {
    await access(opts.root, constants.R_OK | constants.X_OK);
  } catch {
    process.stderr.write(`rtftp: --root ${opts.root}: not a readable directory\n`);
    return 2;
  }
  const metrics = createDataplaneMetrics();
  // --require-snapshot: no request is answered before the sync sidecar's snapshot is complete.
  const snapshotGate = opts.requireSnapshot
    ? new SnapshotGate({ dir: opts.configDir, logger, metrics })
    : undefined;
  // Worker mode (docs/performance.md): with more than one worker, worker threads serve the
  // clients (their views, disks and transfers); this thread listens, admits and reports.
  const workers = resolveWorkers(opts.workers);
  metrics.workers.set(workers);
  let workerMode: Awaited<ReturnType<typeof startWorkerMode>> | undefined;
  try {
    if (workers > 1)
      workerMode = await startWorkerMode(
        opts,
        workers,
        process.argv.slice(2),
        logger,
        metrics,
        snapshotGate,
      );
  } catch (err) {
    logger.fatal({ err: (err as Error).message, workers }, 'Workers could not start');
    return 1;
  }
  const disks = workerMode?.disks ?? (await startDiskSources(opts, logger, metrics, snapshotGate));
  const sources: FileSource[] = [
    LocalDirSource.perClient(opts.root),
    ...disks.sources,
    LocalDirSource.shared(opts.root),
  ];
  const server = new TftpServer({
    ...serverSettingsFrom(opts),
    sources,
    logger,
    metrics,
    ...(snapshotGate ? { admitRequest: snapshotGate.admit.bind(snapshotGate) } : {}),
    ...(workerMode ? { handOff: workerMode.handOff } : {}),
    serials: disks.serials,
  });
  workerMode?.attach(server);
  try {
    await server.start();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'Server could not start');
    await workerMode?.drain(0);
    await disks.stop();
    return 1;
  }
  // HTTP boot (http-boot/, docs/http-boot.md): the same views, sharing TFTP's admission. In
  // worker mode it listens here and reads each client's files in that client's worker.
  const httpBoot = await startHttpBoot(opts, {
    sources: workerMode?.http.sources ?? sources,
    serials: disks.serials,
    admission: workerMode?.http.admission ?? server.sharedAdmission,
    ...(workerMode ? { transitBuffers: workerMode.http.transitBuffers } : {}),
    metrics,
    logger,
    ...(snapshotGate ? { ready: () => snapshotGate.open } : {}),
  });
  if (httpBoot === 'failed') {
    server.stop(0);
    await workerMode?.drain(0);
    await disks.stop();
    return 1;
  }
  const rootReadable = async () =>
    access(opts.root, constants.R_OK).then(
      () => true,
      () => false,
    );
  let rootOk = await rootReadable();
  let shuttingDown = false;
  const notReadyReasons = (): string[] => [
    ...(shuttingDown ? ['shutting down'] : []),
    ...(rootOk ? [] : ['root unreadable']),
    ...(server.addresses.length > 0 ? [] : ['--listen matches no address on this node']),
    ...(snapshotGate && !snapshotGate.open ? ['no complete config snapshot yet'] : []),
    ...(httpBoot?.notReadyReasons() ?? []),
  ];
  const ready = () => notReadyReasons().length === 0;
  // The kernel's count only grows while a socket lives; a socket closed (its address went)
  // takes its count away: count only increases, never the drop of a total.
  let listenDropsSeen = readListenDrops(server.port, server.addresses) ?? 0;
  const updateReadiness = () => {
    metrics.ready.set(ready() ? 1 : 0);
    metrics.listenAddresses.set(server.addresses.length);
    metrics.listenReceiveBuffer.set(server.listenReceiveBufferBytes);
    const drops = readListenDrops(server.port, server.addresses);
    if (drops !== undefined) {
      if (drops > listenDropsSeen) metrics.listenDrops.inc(drops - listenDropsSeen);
      listenDropsSeen = drops;
    }
  };
  const readinessTimer = setInterval(async () => {
    rootOk = await rootReadable();
    updateReadiness();
  }, 5000).unref();
  updateReadiness();
  logger.info(
    { port: server.port, addresses: server.addresses, root: opts.root },
    'Server listening',
  );

  // Liveness that tells the truth: a stuck event loop or thread pool fails /healthz.
  const health = new HealthMonitor({
    stallLimitMs: opts.healthStallLimitS * 1000,
    windowMs: opts.healthStallLimitS * 1000,
    onSample: (worst) => {
      for (const [part, ms] of Object.entries(worst))
        metrics.healthStallSeconds.set({ part }, ms / 1000);
    },
  });
  health.start();
  const healthOfAll = () => {
    const verdict = health.check();
    return verdict.ok && workerMode ? workerMode.health() : verdict;
  };
  const probes = { ready, notReadyReasons, health: healthOfAll };
  const http = buildHttpServer({
    registry: workerMode?.registry ?? metrics.registry,
    ...probes,
    status: async () => ({
      transfersActive: workerMode?.transfersActive ?? server.activeTransfers,
      listening: server.addresses,
      ...(await disks.status()),
      ...(snapshotGate ? { configSnapshot: snapshotGate.status() } : {}),
      ...(httpBoot ? { http: httpBoot.status() } : {}),
    }),
    statusAllowed: statusAccess(opts.statusAllow),
  });
  // The probe-only server answers the kubelet at the node IP, whatever --metrics-listen is.
  const httpServers = [
    { app: http, port: opts.metricsPort, host: opts.metricsListen, name: 'HTTP server' },
    { app: buildProbeServer(probes), port: opts.probePort, host: '', name: 'Probe server' },
  ].filter((s) => s.port !== 0);
  for (const s of httpServers) {
    try {
      const bound = await listenHttp(s.app, s.port, s.host);
      logger.info(bound, `${s.name} listening`);
    } catch (err) {
      logger.fatal({ err: (err as Error).message, port: s.port }, `${s.name} could not start`);
      server.stop(0);
      await workerMode?.drain(0);
      await disks.stop();
      return 1;
    }
  }
  void snapshotGate?.start();

  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info(
        {
          signal,
          transfersActive: workerMode?.transfersActive ?? server.activeTransfers,
          gracePeriodS: opts.gracePeriodS,
        },
        'Shutdown started',
      );
      clearInterval(readinessTimer);
      shuttingDown = true;
      snapshotGate?.stop();
      health.stop();
      // HTTP transfers read through the workers: the workers drain once HTTP is done, in
      // what is left of the grace period (their TFTP transfers run on meanwhile).
      const graceEnds = Date.now() + opts.gracePeriodS * 1000;
      await Promise.all([
        server.stop(opts.gracePeriodS * 1000),
        httpBoot?.stop(opts.gracePeriodS * 1000),
      ]);
      await workerMode?.drain(Math.max(0, graceEnds - Date.now()));
      await disks.stop();
      for (const s of httpServers) await s.app.close();
      logger.info({}, 'Shutdown completed');
      resolve(0);
    };
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    process.on('SIGINT', () => void shutdown('SIGINT'));
  });
}

main().then(
  (code) => {
    process.exitCode = code;
    // Let pino flush, then leave even if a stray handle lingers.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: Error) => {
    process.stderr.write(`rtftp: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
