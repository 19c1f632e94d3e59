/**
 * Steady-state memory and CPU of the dataplane, the sync sidecar and the operator, idle and
 * under a small load, for the chart's resource requests (docs/helm.md, "Resource requests").
 * A request near the steady state keeps the scheduler honest and the dataplane from being
 * the first pod evicted under memory pressure; the limits stay sized for the peaks.
 *
 * Runs the compiled code (`npm run build`, dist/) as the image does: tsx's loader alone
 * would add tens of MiB. The loads:
 * - dataplane: a boot every second (64 KiB + 8 MiB + 24 MiB, blksize 1468), alternately from
 *   default/ and from the client's own NBD disk (native reader, real nbdkit): ~32 MiB/s;
 * - sync and operator: 200 BootClients, and one more applied every second.
 *
 *   node --import tsx bench/steady-state.ts [--window 30] [--clients 200] [--no-build]
 *                                           [--skip-dataplane]
 *
 * RSS is sampled every second (median and maximum); CPU is utime+stime over the window,
 * in millicores. CPU figures need a quiet machine: on a loaded one they run high.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { renderNbdConfig } from '../common/src/nbd-config.ts';
import { buildFilesystemImage } from '../dataplane/test/fixtures/disk-image.ts';
import { startNbdkit } from '../dataplane/test/fixtures/nbdkit.ts';
import { makeTempDir, seededBytes } from '../dataplane/test/helpers/fixtures.ts';
import { downloadFile } from '../dataplane/test/helpers/tftp-client.ts';
import { bootClient, startTestCluster, waitFor } from '../operator/test/helpers/cluster.ts';
import { applyCreate } from '../operator/test/fake-apiserver/object-rules.ts';
import { median } from './lib/tftp-report.ts';

const { values } = parseArgs({
  options: {
    window: { type: 'string', default: '30' },
    clients: { type: 'string', default: '200' },
    'no-build': { type: 'boolean', default: false },
    'skip-dataplane': { type: 'boolean', default: false },
  },
});
const windowS = Number(values.window);
const clients = Number(values.clients);
const repo = new URL('..', import.meta.url).pathname;
const TICKS_PER_S = 100;

interface Process {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  waitFor(msg: string, ms?: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

function start(entry: string, args: string[], env: NodeJS.ProcessEnv = {}): Process {
  const child = spawn(process.execPath, [join(repo, 'dist', entry), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  for (const stream of [child.stdout!, child.stderr!])
    createInterface({ input: stream }).on('line', (l) => {
      try {
        if (lines.length < 10_000) lines.push(JSON.parse(l));
      } catch {
        // not a log line
      }
    });
  return {
    child,
    lines,
    async waitFor(msg, ms = 60_000) {
      await waitFor(() => lines.some((l) => l.msg === msg), ms, msg);
      return lines.find((l) => l.msg === msg)!;
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

function ticks(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN) / 1024;
}

interface Figures {
  rssMedianMiB: number;
  rssMaxMiB: number;
  milliCpu: number;
}

/** Samples the processes for `windowS` while `load` (if any) runs; returns figures per pid. */
async function measure(pids: number[], load?: (stop: () => boolean) => Promise<void>) {
  const t0 = pids.map(ticks);
  const rss: number[][] = pids.map(() => []);
  const started = performance.now();
  let done = false;
  const running = load?.(() => done);
  while (performance.now() - started < windowS * 1000) {
    pids.forEach((pid, i) => rss[i]!.push(rssMiB(pid)));
    await new Promise((r) => setTimeout(r, 1000));
  }
  const seconds = (performance.now() - started) / 1000;
  const t1 = pids.map(ticks);
  done = true;
  await running;
  return pids.map((_, i): Figures => ({
    rssMedianMiB: Math.round(median(rss[i]!)),
    rssMaxMiB: Math.round(Math.max(...rss[i]!)),
    milliCpu: Math.round(((t1[i]! - t0[i]!) / TICKS_PER_S / seconds) * 1000),
  }));
}

const show = (name: string, f: Figures) =>
  console.log(`| ${name} | ${f.rssMedianMiB} MiB | ${f.rssMaxMiB} MiB | ${f.milliCpu}m |`);

if (!values['no-build']) {
  console.log('building dist/ (npm run build)...');
  const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repo, stdio: 'inherit' });
  if (r.status !== 0) process.exit(1);
}

const dir = makeTempDir('rtftp-steady');
const procs: Process[] = [];
try {
  let dpIdle: Figures | undefined;
  let dpLoad: Figures | undefined;
  if (!values['skip-dataplane']) {
    // The dataplane: default/ files and four clients booting from their own NBD disks.
    const root = dir.file('root');
    const configs = dir.file('configs');
    mkdirSync(join(root, 'default'), { recursive: true });
    mkdirSync(configs);
    const files = {
      'pxelinux.0': seededBytes(64 * 1024, 1),
      vmlinuz: seededBytes(8 << 20, 2),
      initrd: seededBytes(24 << 20, 3),
    };
    for (const [name, data] of Object.entries(files))
      writeFileSync(join(root, 'default', name), data);
    const image = dir.file('disk.img');
    await buildFilesystemImage(image, {
      fs: 'vfat',
      sizeMiB: 64,
      files: Object.entries(files).map(([path, content]) => ({ path, content })),
    });
    const nbd = await startNbdkit({ partitions: [image], table: 'mbr' });
    const diskClients = ['127.0.3.1', '127.0.3.2', '127.0.3.3', '127.0.3.4'];
    for (const ip of diskClients)
      writeFileSync(
        join(configs, `${ip}.nbd`),
        renderNbdConfig({
          url: nbd.url,
          mounts: [{ partition: 1, mountpoint: '/' }],
          tftpRoot: '/',
          backend: 'native',
        }),
      );
    const dataplane = start('dataplane/src/main.js', [
      '--root',
      root,
      '--config-dir',
      configs,
      '--listen',
      '127.0.0.1',
      '--port',
      '0',
      '--metrics-port',
      '0',
    ]);
    procs.push(dataplane);
    const port = Number((await dataplane.waitFor('Server listening')).port);
    let boots = 0;
    let failures = 0;
    const boot = async (i: number) => {
      const local = i % 2 === 0;
      const address = local ? `127.0.2.${(i % 200) + 1}` : diskClients[i % diskClients.length]!;
      for (const file of Object.keys(files)) {
        const r = await downloadFile({
          host: '127.0.0.1',
          port,
          file,
          options: { blksize: '1468' },
          localAddress: address,
        });
        if (!r.ok) failures++;
      }
      boots++;
    };
    const bootEverySecond = async (stop: () => boolean) => {
      const running: Promise<void>[] = [];
      for (let i = 0; !stop(); i++) {
        running.push(boot(i));
        await new Promise((r) => setTimeout(r, 1000));
      }
      await Promise.all(running);
    };
    await new Promise((r) => setTimeout(r, 5000));
    [dpIdle] = await measure([dataplane.child.pid!]);
    [dpLoad] = await measure([dataplane.child.pid!], bootEverySecond);
    console.log(`\ndataplane: ${boots} boots of 32 MiB under load, ${failures} failed downloads`);
    await dataplane.stop();
    await nbd.stop();
  }

  // The operator and the sync sidecar against the in-process API server.
  const cluster = await startTestCluster();
  try {
    // Straight into the fake server's storage (its create rules and schema check): setup.
    const def = cluster.server.resource('bootclients', 'rtftp.io');
    for (let i = 0; i < clients; i++)
      applyCreate(
        cluster.server.store,
        def,
        cluster.namespace,
        bootClient(`c-${i}`, { ip: `10.40.${i >> 8}.${i & 255}` }) as never,
      );
    const env = { KUBECONFIG: cluster.kubeconfigPath };
    const common = ['--namespace', cluster.namespace, '--metrics-port', '0'];
    const operator = start('operator/src/main.js', ['controller', ...common], env);
    const syncDir = dir.file('sync');
    mkdirSync(syncDir);
    const sync = start('operator/src/main.js', ['sync', ...common, '--dir', syncDir], env);
    procs.push(operator, sync);
    await waitFor(
      () => readdirSync(syncDir).length >= clients,
      600_000,
      `${clients} configs synced`,
    );
    // Let the operator finish the first round of status writes before "idle".
    await new Promise((r) => setTimeout(r, 15_000));
    const pids = [sync.child.pid!, operator.child.pid!];
    const [syncIdle, opIdle] = await measure(pids);
    let applied = 0;
    const applyEverySecond = async (stop: () => boolean) => {
      for (let i = 0; !stop(); i++) {
        await cluster.apply(bootClient(`load-${i}`, { ip: `10.41.${i >> 8}.${i & 255}` }));
        applied++;
        await new Promise((r) => setTimeout(r, 1000));
      }
    };
    const [syncLoad, opLoad] = await measure(pids, applyEverySecond);
    console.log(`sync/operator: ${applied} BootClients applied under load\n`);
    console.log('| process | RSS median | RSS max | CPU |');
    console.log('|---|---|---|---|');
    if (dpIdle && dpLoad) {
      show('dataplane, idle', dpIdle);
      show('dataplane, a 32 MiB boot per second', dpLoad);
    }
    show(`sync, idle (${clients} clients)`, syncIdle!);
    show('sync, a BootClient per second', syncLoad!);
    show(`operator, idle (${clients} clients)`, opIdle!);
    show('operator, a BootClient per second', opLoad!);
  } finally {
    for (const p of procs) await p.stop();
    await cluster.stop();
  }
} finally {
  for (const p of procs) await p.stop();
  dir.remove();
}
