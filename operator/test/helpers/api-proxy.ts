/**
 * An HTTP proxy in front of the fake API server for one client (a sync sidecar), to cut
 * that client's view of some resources while everything else it does goes through: with
 * `hold()` every request whose path matches waits, and open watch streams that match stop
 * delivering (their events stay buffered); `release()` lets all of it through again.
 * A node whose sidecar still renews its report Lease but no longer sees the ConfigMaps is
 * the lagging node of the Ready tests.
 */
import { request, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeKubeconfig } from '../fake-apiserver/server.ts';

export interface ApiProxy {
  url: string;
  /** Writes a kubeconfig that points at the proxy. */
  writeKubeconfig(path: string, namespace: string): string;
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export async function startApiProxy(target: string, match: RegExp): Promise<ApiProxy> {
  const upstream = new URL(target);
  let held = false;
  const waiting: (() => void)[] = [];
  const streams = new Set<{ up: IncomingMessage; res: ServerResponse }>();
  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const up = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        res.flushHeaders();
        const stream = { up: upRes, res };
        if (match.test(req.url ?? '')) {
          streams.add(stream);
          upRes.once('close', () => streams.delete(stream));
          if (held) {
            upRes.pause();
            return;
          }
        }
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  };
  const server = createServer((req, res) => {
    if (held && match.test(req.url ?? '')) waiting.push(() => forward(req, res));
    else forward(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    writeKubeconfig: (path, namespace) => writeKubeconfig(url, path, namespace),
    hold() {
      held = true;
      for (const { up, res } of streams) {
        up.unpipe(res);
        up.pause();
      }
    },
    release() {
      held = false;
      for (const { up, res } of streams) up.pipe(res);
      for (const go of waiting.splice(0)) go();
    },
    async close() {
      held = false;
      server.closeAllConnections();
      for (const { res } of streams) res.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
