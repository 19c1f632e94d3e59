/**
 * The HTTP side of the dataplane tests: rtftp started with its HTTP boot server, curl as
 * the real client (a user's, with `--path-as-is` so hostile names reach the server
 * unchanged), and a raw request helper for what curl cannot send.
 */
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { freePort } from '../fixtures/nbdkit.ts';
import { startRtftp } from './tftp-servers.ts';
import type { RunningServer } from './tftp-servers.ts';

export interface RtftpWithHttpBoot {
  server: RunningServer;
  /** TCP port of the HTTP boot server (--http-port). */
  httpPort: number;
  /** /metrics and /status, on 127.0.0.1. */
  metricsPort: number;
}

/** rtftp on 127.0.0.1 with TFTP, HTTP boot and /metrics; resolves once both servers listen. */
export async function startRtftpWithHttpBoot(
  root: string,
  args: string[] = [],
  listen: string[] = ['127.0.0.1'],
): Promise<RtftpWithHttpBoot> {
  const [httpPort, metricsPort] = [await freePort(), await freePort()];
  const server = await startRtftp({
    root,
    listen,
    args: [
      '--grace-period',
      '1',
      '--http-port',
      String(httpPort),
      '--metrics-port',
      String(metricsPort),
      '--metrics-listen',
      '127.0.0.1',
      ...args,
    ],
  });
  await server.waitForLog((l) => l.msg === 'HTTP boot server listening');
  return { server, httpPort, metricsPort };
}

export interface CurlResult {
  status: number;
  /** Lower-case header names; the last response's headers when curl followed none. */
  headers: Record<string, string>;
  body: Buffer;
  exitCode: number | null;
}

/**
 * Runs curl once: `curl -sS --path-as-is -D - -o - URL [args]` (headers, then the body, on
 * stdout: curl 7.88 crashes writing headers to /dev/stderr when that is a socket), from
 * `source` (a loopback alias: the server sees a distinct client) when given.
 */
export function curl(url: string, args: string[] = [], source?: string): Promise<CurlResult> {
  // -I writes the headers as its output already.
  const dump = args.includes('-I') ? [] : ['-D', '-'];
  const argv = ['-sS', '--path-as-is', '--max-time', '60', ...dump, '-o', '-'];
  if (source) argv.push('--interface', source);
  return new Promise((resolve, reject) => {
    const child = spawn('curl', [...argv, ...args, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', (code) => {
      const all = Buffer.concat(out);
      const end = all.indexOf('\r\n\r\n');
      const head = end < 0 ? '' : all.subarray(0, end).toString('latin1');
      const [statusLine, ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({
        status: Number(/^HTTP\/[\d.]+ (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0),
        headers,
        body: end < 0 ? Buffer.alloc(0) : all.subarray(end + 4),
        exitCode: code,
      });
    });
  });
}

/**
 * One request with node:http, the target sent exactly as given (percent-encoded by the
 * caller): for names curl would rewrite or refuse to send.
 */
export function rawRequest(
  port: number,
  target: string,
  opts: { method?: string; headers?: Record<string, string>; localAddress?: string } = {},
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: target,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: false,
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/**
 * A name as a request target: `/` then the name, every byte outside the unreserved set
 * and `/` percent-encoded (the server takes the one leading `/` off again).
 */
export function targetOf(name: string): string {
  const encoded = [...Buffer.from(name, 'utf8')]
    .map((b) => {
      const c = String.fromCharCode(b);
      return /[A-Za-z0-9._~/-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
  return `/${encoded}`;
}
