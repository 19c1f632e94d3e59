/**
 * The dataplane's HTTP side (fastify): /metrics for Prometheus, /healthz (the process
 * answers), /readyz (sockets bound, root readable, config snapshot served), /status
 * (configs and disks as JSON, to loopback clients unless --status-allow says more).
 *
 * Routes only: where each server listens is main.ts's business (listen.ts), so the same
 * handlers serve the main server and the probe-only one.
 */
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { HealthVerdict } from '../health/health-monitor.ts';

export interface ProbeRoutesOptions {
  ready: () => boolean;
  /** Why the server is not ready, for whoever reads /readyz. */
  notReadyReasons?: () => string[];
  /** Liveness (health/health-monitor.ts); absent: healthy whenever the process answers. */
  health?: () => HealthVerdict;
}

export interface HttpServerOptions extends ProbeRoutesOptions {
  /** What /metrics serves (in worker mode, every thread's registries merged). */
  registry: Pick<Registry, 'contentType' | 'metrics'>;
  status: () => unknown;
  /** Whether a client (its socket's remote address) may read /status: status-access.ts. */
  statusAllowed: (remoteAddress: string | undefined) => boolean;
}

/** /healthz and /readyz: the kubelet's probes. */
export function registerProbeRoutes(app: FastifyInstance, opts: ProbeRoutesOptions): void {
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
    return { status: 'not ready', reasons: opts.notReadyReasons?.() ?? [] };
  });
}

export function buildHttpServer(opts: HttpServerOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', opts.registry.contentType);
    return opts.registry.metrics();
  });
  registerProbeRoutes(app, opts);
  app.get('/status', async (req, reply) => {
    if (!opts.statusAllowed(req.socket.remoteAddress)) {
      reply.code(403);
      return {
        error: 'status is served to loopback clients only',
        hint: 'kubectl port-forward or exec, or --status-allow CIDRs',
      };
    }
    return opts.status();
  });
  return app;
}

/** The probe-only server: nothing but /healthz and /readyz, whatever address it is on. */
export function buildProbeServer(opts: ProbeRoutesOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  registerProbeRoutes(app, opts);
  return app;
}
