/**
 * `rtftp`: the standalone TFTP boot server. Serves each client its view of the root:
 * <root>/<ip>/ → the NBD disk of <root>/<ip>.nbd → <root>/default/.
 */
import { access, constants } from 'node:fs/promises';
import pino from 'pino';
import { CliError, parseCli, usage } from './cli.ts';
import type { DataplaneOptions } from './cli.ts';
import { createDataplaneMetrics } from './metrics.ts';
import { buildHttpServer } from './http/http-server.ts';
import { LocalDirSource } from './sources/local-dir.ts';
import type { FileSource } from './sources/source.ts';
import { TftpServer } from './tftp/server.ts';
import { startDiskSources } from './disk-sources.ts';
import { HealthMonitor } from './health/health-monitor.ts';

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
  const disks = await startDiskSources(opts, logger, metrics);
  const sources: FileSource[] = [
    LocalDirSource.perClient(opts.root),
    ...disks.sources,
    LocalDirSource.shared(opts.root),
  ];
  const server = new TftpServer({
    sources,
    listen: opts.listen,
    port: opts.port,
    logger,
    metrics,
    maxTransfers: opts.maxTransfers,
    maxTransfersPerClient: opts.maxTransfersPerClient,
    timeoutMs: opts.timeoutMs,
    maxRetries: opts.retries,
    maxWindowBytes: opts.maxWindowBytes,
  });
  try {
    await server.start();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'Server could not start');
    await disks.stop();
    return 1;
  }
  const rootReadable = async () =>
    access(opts.root, constants.R_OK).then(
      () => true,
      () => false,
    );
  let ready = await rootReadable();
  const readinessTimer = setInterval(async () => {
    ready = await rootReadable();
    metrics.ready.set(ready ? 1 : 0);
  }, 5000).unref();
  metrics.ready.set(ready ? 1 : 0);
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
  const http = buildHttpServer({
    registry: metrics.registry,
    ready: () => ready,
    status: () => ({ transfersActive: server.activeTransfers, ...disks.status() }),
    health: () => health.check(),
  });
  if (opts.metricsPort !== 0) {
    try {
      await http.listen({ port: opts.metricsPort, host: opts.metricsListen });
      const addr = http.server.address();
      logger.info(
        {
          port: typeof addr === 'object' && addr ? addr.port : opts.metricsPort,
          address: opts.metricsListen,
        },
        'HTTP server listening',
      );
    } catch (err) {
      logger.fatal(
        { err: (err as Error).message, port: opts.metricsPort },
        'HTTP server could not start',
      );
      server.stop(0);
      await disks.stop();
      return 1;
    }
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info(
        { signal, transfersActive: server.activeTransfers, gracePeriodS: opts.gracePeriodS },
        'Shutdown started',
      );
      clearInterval(readinessTimer);
      health.stop();
      ready = false;
      await server.stop(opts.gracePeriodS * 1000);
      await disks.stop();
      await http.close();
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
