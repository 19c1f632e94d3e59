/**
 * /healthz tells the truth: a child process runs the real HealthMonitor and HTTP server
 * with a thread pool of 2 (UV_THREADPOOL_SIZE); the test wedges both threads on purpose
 * (opens of FIFOs nobody writes to), then frees them, then holds the event loop.
 * /healthz must answer 503 with the reason while stuck, and 200 again once recovered.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const HARNESS = fileURLToPath(new URL('./helpers/health-harness.ts', import.meta.url));
const LIMIT_MS = 1000;

let child: ChildProcess | undefined;
let dir = '';
after(async () => {
  if (child?.pid && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function healthz(port: number): Promise<{ code: number; body: Record<string, string> }> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
    signal: AbortSignal.timeout(5000),
  });
  return { code: res.status, body: (await res.json()) as Record<string, string> };
}

/** Polls /healthz until `want` answers; resolves that answer. */
async function until(port: number, want: number, withinMs: number) {
  const end = Date.now() + withinMs;
  let last: Awaited<ReturnType<typeof healthz>> | undefined;
  while (Date.now() < end) {
    last = await healthz(port).catch(() => undefined);
    if (last?.code === want) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(
    `/healthz did not answer ${want} within ${withinMs} ms (last: ${JSON.stringify(last)})`,
  );
}

test(
  '/healthz fails while the thread pool or the event loop is stuck, and recovers',
  { timeout: 120_000 },
  async () => {
    dir = await mkdtemp(join(tmpdir(), 'rtftp-health-'));
    const fifos = [join(dir, 'a'), join(dir, 'b')];
    for (const f of fifos) execFileSync('mkfifo', [f]);
    child = spawn(process.execPath, ['--import', 'tsx', HARNESS, String(LIMIT_MS)], {
      env: { ...process.env, UV_THREADPOOL_SIZE: '2' },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const first = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child!.stdout! }).once('line', resolve);
      child!.once('exit', (code) => reject(new Error(`harness exited (${code})`)));
    });
    const { port } = JSON.parse(first) as { port: number };
    assert.deepEqual(await healthz(port), { code: 200, body: { status: 'ok' } });

    // Both threads of the pool block in open(2) of a FIFO without a writer.
    child.stdin!.write(`wedge ${fifos.join(' ')}\n`);
    const wedged = await until(port, 503, 15_000);
    assert.equal(wedged.body.status, 'unhealthy');
    assert.match(
      wedged.body.reason!,
      /^thread pool blocked \(a canary fs\.stat waited\) for \d+\.\d s/,
    );

    // A writer for each FIFO: the opens return, the canary comes back, /healthz recovers.
    for (const f of fifos) closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
    await until(port, 200, 15_000);

    // The event loop held for 3 s: reported once it runs again, then forgotten.
    child.stdin!.write('block 3000\n');
    await new Promise((r) => setTimeout(r, 200));
    const blocked = await until(port, 503, 15_000);
    // Seen by a timer, which fired up to one tick (100 ms) before the block began.
    assert.match(
      blocked.body.reason!,
      /^event loop blocked for (2\.9|[3-9]\.\d) s \(limit 1\.0 s\)$/,
    );
    await until(port, 200, 15_000);
  },
);
