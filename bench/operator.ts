/**
 * Operator benchmark, against the fake API server with the real operator and sync processes:
 * - time from the operator's first list of BootClients to all N rendered (files present in
 *   the sync sidecar's directory) and Accepted + Rendered in status;
 * - apply -> file latency through the shared-volume path (ConfigMap shards -> sync -> file),
 *   with N BootClients present;
 * - operator RSS (and peak) at N.
 * Run: node --import tsx bench/operator.ts [--count 10000] [--samples 20] [--workers 4]
 */
import { existsSync, readdirSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  bootClient,
  startOperator,
  startSync,
  startTestCluster,
  waitFor,
} from '../operator/test/helpers/cluster.ts';
import { applyCreate } from '../operator/test/fake-apiserver/object-rules.ts';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '10000' },
    samples: { type: 'string', default: '20' },
    workers: { type: 'string', default: '4' },
  },
});
const count = Number(values.count);
const samples = Number(values.samples);

function ipOf(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

function memoryMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: Math.round(kib('VmRSS') / 1024), peak: Math.round(kib('VmHWM') / 1024) };
}

const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

let firstList: number | undefined;
const cluster = await startTestCluster({
  maxHistory: 200_000,
  onRequest: (method, url) => {
    if (
      firstList === undefined &&
      method === 'GET' &&
      url.pathname.endsWith('/bootclients') &&
      !url.searchParams.has('watch')
    )
      firstList = Date.now();
  },
});
const dir = mkdtempSync(join(tmpdir(), 'rtftp-operator-bench-'));
const procs: { stop(): Promise<void> }[] = [];
try {
  const created = Date.now();
  // Straight into the fake server's storage (same create rules and schema check as over HTTP):
  // setup, not what is measured.
  const def = cluster.server.resource('bootclients', 'rtftp.io');
  for (let i = 0; i < count; i++)
    applyCreate(
      cluster.server.store,
      def,
      cluster.namespace,
      bootClient(`client-${i}`, { ip: ipOf(i + 1), url: `nbd://10.255.0.1/disk-${i}` }) as never,
    );
  console.log(`created ${count} BootClients in ${Date.now() - created} ms (setup, not measured)`);

  const sync = await startSync({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    dir,
  });
  procs.push(sync);
  // Production lease timings: the bench measures throughput, not failover.
  const operator = await startOperator({
    kubeconfig: cluster.kubeconfigPath,
    namespace: cluster.namespace,
    args: [
      '--lease-duration',
      '15',
      '--renew-deadline',
      '10',
      '--retry-period',
      '2',
      '--workers',
      values.workers,
    ],
  });
  procs.push(operator);
  const files = () => readdirSync(dir).filter((n) => n.endsWith('.nbd')).length;
  const accepted = () =>
    cluster.server.store.list('rtftp.io/v1alpha1/bootclients', cluster.namespace).filter((o) => {
      const cs =
        (o.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ??
        [];
      return (
        cs.some((c) => c.type === 'Accepted' && c.status === 'True') &&
        cs.some((c) => c.type === 'Rendered' && c.status === 'True')
      );
    }).length;
  let filesDone: number | undefined;
  await waitFor(
    () => {
      if (filesDone === undefined && files() === count) filesDone = Date.now();
      return filesDone !== undefined && accepted() === count;
    },
    600_000,
    `all ${count} rendered and Accepted`,
  );
  const allDone = Date.now();
  const start = firstList ?? allDone;
  const mem = memoryMiB(operator.proc.pid!);
  console.log(`first list -> all ${count} files in the sync dir: ${filesDone! - start} ms`);
  console.log(
    `first list -> all ${count} files + Accepted/Rendered in status: ${allDone - start} ms`,
  );
  console.log(
    `operator memory at ${count}: RSS ${mem.rss} MiB, peak ${mem.peak} MiB; sync RSS ${memoryMiB(sync.proc.pid!).rss} MiB`,
  );

  const latencies: number[] = [];
  for (let k = 0; k < samples; k++) {
    const ip = `10.254.0.${k + 1}`;
    const t0 = Date.now();
    await cluster.apply(bootClient(`latency-${k}`, { ip }));
    await waitFor(() => existsSync(join(dir, `${ip}.nbd`)), 30_000, `${ip}.nbd`);
    latencies.push(Date.now() - t0);
  }
  console.log(
    `apply -> file latency with ${count} present (${samples} samples): median ${percentile(latencies, 0.5)} ms, p95 ${percentile(latencies, 0.95)} ms, max ${Math.max(...latencies)} ms`,
  );
  const writes = Object.fromEntries(cluster.server.writeCounts);
  console.log(`API writes: ${JSON.stringify(writes)}`);
} finally {
  for (const p of procs.reverse()) await p.stop();
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
