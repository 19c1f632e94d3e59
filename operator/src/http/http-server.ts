/**
 * /metrics, /healthz, /readyz over fastify, for the operator and the sync sidecar.
 * Readiness is "informers have synced": before that a replica knows nothing.
 *
 * An empty host means every address of both families (`::` with IPv4 mapped, 0.0.0.0 on a
 * kernel without IPv6): the kubelet probes the pod IP, IPv6 on an IPv6-only cluster. A
 * probe port adds a server with only /healthz and /readyz on every address, for the sync
 * sidecar on the host network when --metrics-listen narrows the main server to one address.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

export interface HttpServerOptions {
  port: number;
  host: string;
  /** Port of the probe-only server; 0 or absent: none. */
  probePort?: number;
  registry: Registry;
  ready: () => boolean;
  /** What /readyz says while not ready (default: the informers have not synced). */
  notReadyReason?: string;
  log: Logger;
}

function registerProbeRoutes(
  app: FastifyInstance,
  ready: () => boolean,
  reason = 'informers have not synced',
): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    if (ready()) return { status: 'ready' };
    reply.code(503);
    return { status: 'not ready', reason };
  });
}

async function listenOn(app: FastifyInstance, port: number, host: string): Promise<number> {
  if (host) await app.listen({ port, host });
  else
    await app.listen({ port, host: '::' }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EAFNOSUPPORT' && err.code !== 'EADDRNOTAVAIL') throw err;
      return app.listen({ port, host: '0.0.0.0' });
    });
  const address = app.server.address();
  return typeof address === 'object' && address ? address.port : port;
}

export async function startHttpServer(o: HttpServerOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', o.registry.contentType);
    return o.registry.metrics();
  });
  registerProbeRoutes(app, o.ready, o.notReadyReason);
  const probes = o.probePort ? Fastify({ logger: false }) : undefined;
  if (probes) {
    registerProbeRoutes(probes, o.ready, o.notReadyReason);
    // One handle for the caller: closing the main server closes the probe server too.
    app.addHook('onClose', async () => {
      await probes.close();
    });
  }
  const port = await listenOn(app, o.port, o.host);
  o.log.info({ port, host: o.host || '::' }, 'HTTP server listening');
  if (probes) {
    try {
      const probePort = await listenOn(probes, o.probePort!, '');
      o.log.info({ port: probePort, host: '::' }, 'Probe server listening');
    } catch (err) {
      await app.close();
      throw err;
    }
  }
  return app;
}
