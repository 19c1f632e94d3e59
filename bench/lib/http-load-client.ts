/**
 * The boot storm's HTTP clients (bench/storm.ts, profile `http`): many machines, each from
 * its own source address, fetching their kernel and initrd over HTTP/1.1 as HTTP-booting
 * firmware does (iPXE, UEFI HTTP Boot).
 *
 * - Each client has its own keep-alive agent with one connection: its kernel, then its
 *   initrd on the same connection, as firmware does (with `parallel`: both at once, on two).
 * - Every body streams into a sha256 and is dropped; the digest and the length are
 *   compared with the expected file's, so "byte-identical" is exact and memory stays at
 *   what the sockets hold, whatever the file's size.
 * - A response that is not 200, a connection that fails or goes silent for `idleTimeoutMs`
 *   fails that client with the reason; a failed fetch ends the client (sequential).
 */
import { Agent, request } from 'node:http';
import { createHash } from 'node:crypto';
import type {
  StormClientOutcome,
  StormRunResult,
} from '../../dataplane/test/helpers/storm-client.ts';

export interface HttpFetch {
  /** The request target, e.g. `/vmlinuz`. */
  target: string;
  size: number;
  sha256: string;
}

export interface HttpLoadSpec {
  profile: 'http';
  host: string;
  port: number;
  clients: { address: string; fetches: HttpFetch[] }[];
  /** A client's files one after the other on one connection; false: all at once. */
  sequential: boolean;
  /** A request whose connection is silent this long fails (firmware gives up around 60 s). */
  idleTimeoutMs: number;
}

export interface HttpRunResult extends StormRunResult {
  /** TCP connections the clients opened (sequential, all reused: one per client). */
  connections: number;
}

interface Stats {
  bytes: number;
  connections: number;
}

/** One GET; resolves undefined when the body matched, else why not. */
function fetchOne(
  spec: HttpLoadSpec,
  agent: Agent,
  address: string,
  f: HttpFetch,
  stats: Stats,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (why?: string) => {
      if (settled) return;
      settled = true;
      resolve(why && `${f.target}: ${why}`);
    };
    const req = request(
      { host: spec.host, port: spec.port, path: f.target, agent, localAddress: address },
      (res) => {
        if (res.statusCode !== 200) {
          const retry = res.headers['retry-after'];
          res.resume();
          return done(`HTTP ${res.statusCode}${retry ? ` (Retry-After ${retry})` : ''}`);
        }
        const hash = createHash('sha256');
        let got = 0;
        res.on('data', (chunk: Buffer) => {
          got += chunk.length;
          stats.bytes += chunk.length;
          hash.update(chunk);
        });
        res.on('error', (err) => done(`${err.message} after ${got} bytes`));
        res.on('close', () => {
          if (!res.complete) done(`connection closed after ${got} bytes`);
        });
        res.on('end', () => {
          if (got !== f.size) return done(`short: ${got} of ${f.size} bytes`);
          done(hash.digest('hex') === f.sha256 ? undefined : 'bytes differ (sha256)');
        });
      },
    );
    req.on('socket', (socket) => {
      if (!req.reusedSocket) stats.connections++;
      socket.setNoDelay(true);
    });
    req.setTimeout(spec.idleTimeoutMs, () =>
      req.destroy(new Error(`silent for ${spec.idleTimeoutMs} ms`)),
    );
    req.on('error', (err) => done(err.message));
    req.end();
  });
}

async function runClient(
  spec: HttpLoadSpec,
  client: HttpLoadSpec['clients'][number],
  stats: Stats,
  t0: number,
): Promise<StormClientOutcome> {
  const agent = new Agent({
    keepAlive: true,
    maxSockets: spec.sequential ? 1 : client.fetches.length,
  });
  const outcome: StormClientOutcome = { address: client.address, ok: true, ms: 0 };
  const fail = (why: string | undefined) => {
    if (why === undefined || !outcome.ok) return;
    outcome.ok = false;
    outcome.failure = why;
  };
  try {
    if (spec.sequential) {
      for (const f of client.fetches) {
        fail(await fetchOne(spec, agent, client.address, f, stats));
        if (!outcome.ok) break;
      }
    } else {
      const all = client.fetches.map((f) => fetchOne(spec, agent, client.address, f, stats));
      for (const why of await Promise.all(all)) fail(why);
    }
  } finally {
    agent.destroy();
  }
  outcome.ms = performance.now() - t0;
  return outcome;
}

/** Runs every client of `spec` at once; resolves when every one has ended. */
export async function runHttpClients(spec: HttpLoadSpec): Promise<HttpRunResult> {
  const startedAt = Date.now();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const stats: Stats = { bytes: 0, connections: 0 };
  const clients = await Promise.all(spec.clients.map((c) => runClient(spec, c, stats, t0)));
  const cpu = process.cpuUsage(cpu0);
  return {
    clients,
    bytes: stats.bytes,
    // TCP retransmits for itself: the TFTP counters do not apply.
    duplicateData: 0,
    resent: 0,
    connections: stats.connections,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    startedAt,
    endedAt: Date.now(),
  };
}
