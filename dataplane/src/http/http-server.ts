/**
 * The dataplane's HTTP side (fastify): /metrics for Prometheus, /healthz (the process
 * answers), /readyz (sockets bound, root readable), /status (configs and disks as JSON).
 */
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export interface HttpServerOptions {
  registry: Registry;
  ready: () => boolean;
  status: () => unknown;
}

export function buildHttpServer(opts: HttpServerOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', opts.registry.contentType);
    return opts.registry.metrics();
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    if (opts.ready()) return { status: 'ready' };
    reply.code(503);
    return { status: 'not ready' };
  });
  app.get('/status', async () => opts.status());
  return app;
}
