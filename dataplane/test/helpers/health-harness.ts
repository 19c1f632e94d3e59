/**
 * A child process for health-wedge.test.ts: the real HealthMonitor and HTTP server, wired
 * as main.ts wires them, plus commands on stdin that hurt it on purpose — `wedge PATH…`
 * opens each FIFO for reading (each open holds a thread of libuv's pool until a writer
 * comes), `block MS` holds the event loop. Prints {"port": N} once listening.
 * Arguments: the stall limit in ms (default 1000).
 */
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Registry } from 'prom-client';
import { HealthMonitor } from '../../src/health/health-monitor.ts';
import { buildHttpServer } from '../../src/http/http-server.ts';

const limitMs = Number(process.argv[2] ?? 1000);
const monitor = new HealthMonitor({ stallLimitMs: limitMs, windowMs: limitMs, tickMs: 100 });
monitor.start();
const app = buildHttpServer({
  registry: new Registry(),
  ready: () => true,
  status: () => ({}),
  health: () => monitor.check(),
  statusAllowed: () => false,
});
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address?.port })}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, ...args] = line.trim().split(' ');
  if (command === 'wedge') {
    for (const path of args) void open(path, 'r').then((h) => h.close());
  } else if (command === 'block') {
    const until = performance.now() + Number(args[0]);
    while (performance.now() < until) {
      // the event loop held on purpose
    }
  }
});
process.stdin.once('end', () => process.exit(0));
