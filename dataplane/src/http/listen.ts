/**
 * Where an HTTP server of the dataplane listens. No address means every address of both
 * families: the kubelet probes a hostNetwork pod at the node IP, which is IPv6 on an
 * IPv6-only node. `::` with IPV6_V6ONLY off (libuv sets it off explicitly, whatever the
 * sysctl says) takes IPv4 as mapped addresses too; on a kernel without IPv6 it falls back
 * to 0.0.0.0.
 */
import type { FastifyInstance } from 'fastify';

/** The address actually bound: `::` (both families), `0.0.0.0`, or the one asked for. */
export async function listenHttp(
  app: FastifyInstance,
  port: number,
  host: string,
): Promise<{ address: string; port: number }> {
  if (host) await app.listen({ port, host });
  else {
    try {
      await app.listen({ port, host: '::' });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw err;
      await app.listen({ port, host: '0.0.0.0' });
    }
  }
  const a = app.server.address();
  return typeof a === 'object' && a
    ? { address: a.address, port: a.port }
    : { address: host, port };
}
