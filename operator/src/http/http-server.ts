/**
 * /metrics, /healthz, /readyz over fastify, for the operator and the sync sidecar.
 * Readiness is "informers have synced": before that a replica knows nothing.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

export interface HttpServerOptions {
  port: number;
  host: string;
  registry: Registry;
  ready: () => boolean;
  log: Logger;
}

export async function startHttpServer(o: HttpServerOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', o.registry.contentType);
    return o.registry.metrics();
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    if (o.ready()) return { status: 'ready' };
    reply.code(503);
    return { status: 'not ready', reason: 'informers have not synced' };
  });
  await app.listen({ port: o.port, host: o.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  o.log.info({ port, host: o.host }, 'HTTP server listening');
  return app;
}
