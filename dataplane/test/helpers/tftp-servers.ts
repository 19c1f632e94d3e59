/**
 * Starts TFTP servers for tests and the benchmark — rtftp (bin/rtftp.js) and the peers
 * in.tftpd (tftp-hpa), atftpd and dnsmasq — optionally inside a network namespace,
 * waits until each is bound, and stops each by its PID.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from '../fixtures/nbdkit.ts';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const RTFTP_BIN = `${REPO}bin/rtftp.js`;
const RTFTP_MAIN = `${REPO}dataplane/src/main.ts`;
export const IN_TFTPD = `${REPO}.tools/tftpd-hpa/usr/sbin/in.tftpd`;
export const ATFTPD = `${REPO}.tools/atftpd/usr/sbin/atftpd`;

export type LogLine = Record<string, unknown> & { msg?: string };

export interface RunningServer {
  name: string;
  pid: number;
  port: number;
  /** Parsed JSON log lines (rtftp), most recent last; bounded. */
  logs: LogLine[];
  /** Raw output lines of either stream, most recent last; bounded. */
  output: string[];
  alive(): boolean;
  waitForLog(match: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  stop(): Promise<void>;
}

const KEPT_LINES = 5000;

/** Why rtftp tests cannot run yet, or undefined when they can. */
export function rtftpMissingReason(): string | undefined {
  if (!existsSync(RTFTP_MAIN))
    return 'the TFTP server (dataplane/src/main.ts, the lead is building it) has not landed yet';
  return undefined;
}

export function peerMissingReason(path: string): string | undefined {
  if (!existsSync(path)) return `${path} is missing: run scripts/setup.sh`;
  const ldd = spawnSync('ldd', [path], { encoding: 'utf8' });
  if (/not found/.test(ldd.stdout)) return `${path} lacks libraries (${ldd.stdout.trim()})`;
  return undefined;
}

function inNetns(netns: string | undefined, argv: string[]): [string, string[]] {
  // `ip netns exec` execs the program, so the PID we get is the server's own.
  if (netns) return ['ip', ['netns', 'exec', netns, ...argv]];
  return [argv[0]!, argv.slice(1)];
}

function track(name: string, child: ChildProcess, port: number): RunningServer {
  const logs: LogLine[] = [];
  const output: string[] = [];
  const listeners = new Set<() => void>();
  let exited = false;
  const onLine = (line: string) => {
    output.push(line);
    if (output.length > KEPT_LINES) output.shift();
    if (line.startsWith('{')) {
      try {
        logs.push(JSON.parse(line) as LogLine);
        if (logs.length > KEPT_LINES) logs.shift();
      } catch {
        // a partial or foreign line: kept in output only
      }
    }
    for (const l of listeners) l();
  };
  if (child.stdout) createInterface({ input: child.stdout }).on('line', onLine);
  if (child.stderr) createInterface({ input: child.stderr }).on('line', onLine);
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      for (const l of listeners) l();
      resolve();
    }),
  );
  const server: RunningServer = {
    name,
    pid: child.pid!,
    port,
    logs,
    output,
    alive: () => !exited,
    waitForLog(match, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = logs.find(match);
          if (hit) done(() => resolve(hit));
          else if (exited)
            done(() =>
              reject(new Error(`${name} exited; output:\n${output.slice(-30).join('\n')}`)),
            );
        };
        const timer = setTimeout(
          () =>
            done(() =>
              reject(
                new Error(
                  `${name}: no matching log line in ${timeoutMs} ms; output:\n${output.slice(-30).join('\n')}`,
                ),
              ),
            ),
          timeoutMs,
        );
        const done = (f: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          f();
        };
        listeners.add(check);
        check();
      });
    },
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exit;
      clearTimeout(killer);
    },
  };
  return server;
}

export interface RtftpOptions {
  /** Another checkout's bin/rtftp.js (a before/after comparison); this one's by default. */
  bin?: string;
  root: string;
  listen?: string[];
  port?: number;
  netns?: string;
  args?: string[];
  env?: Record<string, string>;
  /** Options for node itself, before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

/**
 * Starts bin/rtftp.js and resolves once it logged "Server listening" (its port parsed from
 * it), and, when given a --metrics-port, once its HTTP server listens too.
 */
export async function startRtftp(o: RtftpOptions): Promise<RunningServer> {
  const argv = [
    process.execPath,
    ...(o.nodeArgs ?? []),
    o.bin ?? RTFTP_BIN,
    '--root',
    o.root,
    '--listen',
    (o.listen ?? ['127.0.0.1']).join(','),
    '--port',
    String(o.port ?? 0),
    // Off unless asked for: its default port (9669) would clash between parallel tests.
    ...(o.args?.includes('--metrics-port') ? [] : ['--metrics-port', '0']),
    ...(o.args ?? []),
  ];
  const [cmd, args] = inNetns(o.netns, argv);
  const child = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...o.env },
  });
  const server = track('rtftp', child, 0);
  try {
    const line = await server.waitForLog((l) => l.msg === 'Server listening', 30_000);
    server.port = Number(line.port);
    if (!Number.isInteger(server.port) || server.port <= 0)
      throw new Error(`rtftp logged "Server listening" without a port: ${JSON.stringify(line)}`);
    // "Server listening" (TFTP) comes before the HTTP server binds: a test that fetched
    // /metrics at once could meet a refused connection. Wait for that server too.
    const metricsPort = o.args?.[o.args.indexOf('--metrics-port') + 1];
    if (o.args?.includes('--metrics-port') && metricsPort !== '0')
      await server.waitForLog((l) => l.msg === 'HTTP server listening', 30_000);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/**
 * Starts rtftp with its HTTP server (/metrics, /healthz) on a free loopback port, and a
 * short grace period; resolves the server and that port once that server listens.
 */
export async function startRtftpWithHttp(
  root: string,
  args: string[] = [],
): Promise<{ server: RunningServer; httpPort: number }> {
  const httpPort = await freePort();
  const http = ['--metrics-port', String(httpPort), '--metrics-listen', '127.0.0.1'];
  const server = await startRtftp({ root, args: ['--grace-period', '1', ...http, ...args] });
  return { server, httpPort };
}

/** Resolves once something listens on UDP address:port (in the namespace, if any). */
export async function waitForUdpListener(
  address: string,
  port: number,
  netns?: string,
  timeoutMs = 10_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const [cmd, args] = inNetns(netns, ['ss', '-Hlun', `sport = :${port}`]);
    const out = spawnSync(cmd, args, { encoding: 'utf8' }).stdout ?? '';
    if (out.includes(`${address}:${port}`) || out.includes(`*:${port}`)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listened on udp ${address}:${port} within ${timeoutMs} ms`);
}

export interface PeerOptions {
  root: string;
  address: string;
  port: number;
  netns?: string;
  /** dnsmasq: transfers at once (--tftp-max; default 200 here, 50 in dnsmasq itself). */
  tftpMax?: number;
}

/** A peer server (its argv, run in `o.netns` when given), up once `o.port` is bound. */
export async function startPeer(
  name: string,
  argv: string[],
  o: PeerOptions,
): Promise<RunningServer> {
  const [cmd, args] = inNetns(o.netns, argv);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const server = track(name, child, o.port);
  try {
    await waitForUdpListener(o.address, o.port, o.netns);
    if (!server.alive()) throw new Error(`${name} exited: ${server.output.join('\n')}`);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/** tftp-hpa's in.tftpd in the foreground (-L), serving `root` (-s chroots into it). */
export function startInTftpd(o: PeerOptions): Promise<RunningServer> {
  return startPeer('in.tftpd', [IN_TFTPD, '-L', '-s', o.root, '-a', `${o.address}:${o.port}`], o);
}

export function startAtftpd(o: PeerOptions): Promise<RunningServer> {
  const argv = [ATFTPD, '--daemon', '--no-fork', '--user', 'root.root', '--logfile', '/dev/null'];
  argv.push('--port', String(o.port), '--bind-address', o.address, '--maxthread', '200', o.root);
  return startPeer('atftpd', argv, o);
}

/** dnsmasq's TFTP server: it always binds port 69, so give it a namespace of its own. */
export function startDnsmasqTftp(o: PeerOptions): Promise<RunningServer> {
  const argv = ['dnsmasq', '--no-daemon', '--port=0', '--conf-file=/dev/null', '--pid-file'];
  argv.push(
    '--user=root',
    '--enable-tftp',
    `--tftp-root=${o.root}`,
    `--tftp-max=${o.tftpMax ?? 200}`,
  );
  argv.push('--bind-interfaces', `--listen-address=${o.address}`, '--quiet-tftp');
  return startPeer('dnsmasq', argv, { ...o, port: 69 });
}

/** Peak resident set (VmHWM) of a live process, in kB. */
export function peakRssKb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

/** A sample's name and labels: `name{a="b",c="d"}` → ['name', {a: 'b', c: 'd'}]. */
function parseSample(text: string): [string, Map<string, string>] {
  const brace = text.indexOf('{');
  if (brace < 0) return [text, new Map()];
  const labels = new Map(
    [...text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]),
  );
  return [text.slice(0, brace), labels];
}

/**
 * One sample of a Prometheus text exposition, e.g. `rtftp_probes_total` or `name{a="b"}`:
 * the sum of the series of that name whose labels include the ones given (a metric may
 * carry more labels than a test names, e.g. `protocol`), undefined when none has them.
 */
export function metricValue(exposition: string, sample: string): number | undefined {
  const [name, want] = parseSample(sample);
  let sum: number | undefined;
  for (const line of exposition.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const space = line.lastIndexOf(' ');
    const [lineName, labels] = parseSample(line.slice(0, space));
    if (lineName !== name || [...want].some(([k, v]) => labels.get(k) !== v)) continue;
    sum = (sum ?? 0) + Number(line.slice(space + 1));
  }
  return sum;
}
