/**
 * The dataplane's HTTP side (fastify): /metrics for Prometheus, /healthz (the process
 * answers), /readyz (sockets bound, root readable), /status (configs and disks as JSON).
 */
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { HealthVerdict } from '../health/health-monitor.ts';

export interface HttpServerOptions {
  registry: Registry;
  ready: () => boolean;
  status: () => unknown;
  /** Liveness (health/health-monitor.ts); absent: healthy whenever the process answers. */
  health?: () => HealthVerdict;
}

export function buildHttpServer(opts: HttpServerOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', opts.registry.contentType);
    return opts.registry.metrics();
  });
  // Liveness: 503 with the reason when the event loop or the thread pool is stuck.
  app.get('/healthz', async (_req, reply) => {
    const verdict = opts.health?.() ?? { ok: true };
    if (verdict.ok) return { status: 'ok' };
    reply.code(503);
    return { status: 'unhealthy', reason: verdict.reason };
  });
  app.get('/readyz', async (_req, reply) => {
    if (opts.ready()) return { status: 'ready' };
    reply.code(503);
    return { status: 'not ready' };
  });
  app.get('/status', async () => opts.status());
  return app;
}
