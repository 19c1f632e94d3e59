/**
 * Starts the HTTP boot server for main.ts from the command line's options, so main.ts
 * holds one small block: null when --http-port is 0 (off, the standalone default),
 * 'failed' (logged) when it cannot bind, else a handle for readiness, /status and shutdown.
 */
import type { Logger } from 'pino';
import type { ProvenAdmission } from '../admission/admission.ts';
import type { DataplaneOptions } from '../cli.ts';
import type { DataplaneMetrics } from '../metrics.ts';
import type { SerialLookup } from '../sources/client-identity.ts';
import type { FileSource } from '../sources/source.ts';
import { describeListenSpec } from '../tftp/listen-spec.ts';
import { HttpBootServer } from './server.ts';

export interface HttpBootParts {
  sources: readonly FileSource[];
  serials: SerialLookup;
  admission: ProvenAdmission;
  metrics: DataplaneMetrics;
  logger: Logger;
  ready?: () => boolean;
  /** Chunk-sized buffers a transfer holds besides its stream buffers (worker mode: 1). */
  transitBuffers?: number;
}

export interface HttpBootHandle {
  notReadyReasons(): string[];
  status(): { port: number; listening: string[]; transfersActive: number };
  stop(graceMs: number): Promise<void>;
}

export async function startHttpBoot(
  opts: DataplaneOptions,
  parts: HttpBootParts,
): Promise<HttpBootHandle | null | 'failed'> {
  if (opts.httpPort === 0) return null;
  const server = new HttpBootServer({
    ...parts,
    listen: opts.httpListen,
    port: opts.httpPort,
    stallTimeoutMs: opts.stallTimeoutS * 1000,
    // A connection is at most one transfer at a time (HTTP/1.1 answers in order): the
    // transfer limits bound connections too, idle keep-alive ones included.
    maxConnections: opts.maxTransfers,
    maxConnectionsPerClient: opts.maxTransfersPerClient,
  });
  try {
    await server.start();
  } catch (err) {
    parts.logger.fatal(
      { err: (err as Error).message, port: opts.httpPort, protocol: 'http' },
      'HTTP boot server could not start',
    );
    return 'failed';
  }
  parts.logger.info(
    { port: server.port, addresses: server.addresses, ...describeListenSpec(opts.httpListen) },
    'HTTP boot server listening',
  );
  return {
    notReadyReasons: () =>
      server.addresses.length > 0 ? [] : ['--http-listen matches no address on this node'],
    status: () => ({
      port: server.port,
      listening: server.addresses,
      transfersActive: server.activeTransfers,
    }),
    stop: (graceMs) => server.stop(graceMs),
  };
}
