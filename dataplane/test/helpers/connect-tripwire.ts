/**
 * A tripwire for "no connection is ever attempted": a process that listens on TCP
 * addresses and unix sockets (optionally inside a network namespace of the test's own),
 * accepts every connection, reports it on stdout and closes it. A test asserts that a
 * refused NBD target's listener saw nothing, and, as the control, that an allowed one
 * did.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface TripwireSpec {
  netns?: string;
  /** Port 0 picks a free one; the chosen port is in `ports`. */
  tcp?: { host: string; port: number }[];
  unix?: string[];
}

export interface Tripwire {
  /** `host:port` (as given, with the real port) or the socket path, in spec order. */
  readonly listening: string[];
  /** Every connection seen so far, by the listener it came to. */
  readonly connections: string[];
  /** Connections to one listener. */
  count(listener: string): number;
  /** Resolves once `listener` has seen a connection (rejects after `timeoutMs`). */
  waitFor(listener: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

// Plain CommonJS for `node -e`: no TypeScript loader inside the namespace.
const SCRIPT = `
const net = require('node:net');
const spec = JSON.parse(process.argv[1]);
const all = [...spec.tcp.map((t) => ({ tcp: t })), ...spec.unix.map((path) => ({ path }))];
const names = [];
let pending = all.length;
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
all.forEach((l, i) => {
  const server = net.createServer((c) => {
    say({ event: 'connect', listener: names[i] });
    c.destroy();
  });
  server.on('error', (err) => { say({ event: 'error', err: String(err) }); process.exit(1); });
  const done = () => {
    names[i] = l.path ?? l.tcp.host + ':' + server.address().port;
    if (--pending === 0) say({ event: 'ready', listening: names });
  };
  if (l.path) server.listen(l.path, done);
  else server.listen(l.tcp.port, l.tcp.host, done);
});
if (all.length === 0) say({ event: 'ready', listening: [] });
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

export async function startTripwire(spec: TripwireSpec): Promise<Tripwire> {
  const argv = [
    process.execPath,
    '-e',
    SCRIPT,
    JSON.stringify({ tcp: spec.tcp ?? [], unix: spec.unix ?? [] }),
  ];
  const [cmd, args] = spec.netns
    ? ['ip', ['netns', 'exec', spec.netns, ...argv]]
    : [argv[0]!, argv.slice(1)];
  // stdin stays open: the tripwire exits when this process does, whatever kills it.
  const child: ChildProcess = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const connections: string[] = [];
  const listening: string[] = [];
  const waiters = new Set<() => void>();
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const ready = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`tripwire exited (${code}) before listening`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let e: { event: string; listener?: string; listening?: string[]; err?: string };
      try {
        e = JSON.parse(line);
      } catch {
        return;
      }
      if (e.event === 'ready') {
        listening.push(...(e.listening ?? []));
        resolve();
      } else if (e.event === 'connect' && e.listener) {
        connections.push(e.listener);
        for (const w of waiters) w();
      } else if (e.event === 'error') reject(new Error(`tripwire: ${e.err}`));
    });
  });
  try {
    await ready;
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    listening,
    connections,
    count: (listener) => connections.filter((c) => c === listener).length,
    waitFor(listener, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!connections.includes(listener)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no connection to ${listener} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}
