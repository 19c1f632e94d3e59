/**
 * TFTP throughput: rtftp against in.tftpd (tftp-hpa), atftpd and dnsmasq on the same
 * files with the same clients, in one run, inside a network namespace of its own
 * (dnsmasq always binds port 69; in.tftpd needs an interface besides loopback).
 * Prints markdown tables: medians of several runs, ratios to tftp-hpa.
 *
 *   npm run bench   |   node --import tsx bench/tftp.ts
 *   BENCH_RUNS=3 BENCH_LOAD_RUNS=3 BENCH_FILE_MB=32 BENCH_CONCURRENT=100
 *   BENCH_SERVERS=rtftp,tftp-hpa,atftpd,dnsmasq
 */
import { spawn } from 'node:child_process';
import { linkSync, mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { makeTempDir, sha256File, writeSeededFile } from '../dataplane/test/helpers/fixtures.ts';
import { createIsolatedNamespace } from '../dataplane/test/helpers/netns.ts';
import { failed, runClient } from '../dataplane/test/helpers/real-clients.ts';
import {
  REPO,
  peakRssKb,
  startAtftpd,
  startDnsmasqTftp,
  startInTftpd,
  startRtftp,
} from '../dataplane/test/helpers/tftp-servers.ts';
import type { RunningServer } from '../dataplane/test/helpers/tftp-servers.ts';
import { ProcessTreeCpu } from './lib/process-tree-cpu.ts';
import type { LoadResult, LoadSpec } from './lib/tftp-load-client.ts';
import { formatTables, median } from './lib/tftp-report.ts';
import type { ServerFigures } from './lib/tftp-report.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const LOAD_RUNS = Number(process.env.BENCH_LOAD_RUNS ?? RUNS);
const FILE_MB = Number(process.env.BENCH_FILE_MB ?? 32);
const CONCURRENT = Number(process.env.BENCH_CONCURRENT ?? 100);
const SERVERS = (process.env.BENCH_SERVERS ?? 'rtftp,tftp-hpa,atftpd,dnsmasq').split(',');
const HOST = '127.0.0.1';
const LOAD_CLIENT = fileURLToPath(new URL('./lib/tftp-load-client.ts', import.meta.url));

export const FIGURES = [
  {
    key: 'lockstep',
    label: 'no options (512-byte lock-step)',
    blksize: undefined,
    windowsize: undefined,
  },
  { key: 'b1024', label: 'blksize 1024', blksize: 1024, windowsize: undefined },
  { key: 'b1428', label: 'blksize 1428', blksize: 1428, windowsize: undefined },
  { key: 'w16', label: 'blksize 1428 + windowsize 16', blksize: 1428, windowsize: 16 },
] as const;

interface Layout {
  /** Files at the top: what the peers serve. */
  peerRoot: string;
  /** The same files (hard links) under default/: what rtftp serves to any client. */
  rtftpRoot: string;
  sha256: string;
  scratch: string;
}

function start(name: string, layout: Layout, netns: string): Promise<RunningServer> {
  const peer = { root: layout.peerRoot, address: HOST, port: 69, netns };
  switch (name) {
    case 'rtftp':
      return startRtftp({
        root: layout.rtftpRoot,
        listen: [HOST],
        port: 69,
        netns,
        args: ['--grace-period', '1'],
      });
    case 'tftp-hpa':
      return startInTftpd(peer);
    case 'atftpd':
      return startAtftpd(peer);
    case 'dnsmasq':
      return startDnsmasqTftp(peer);
  }
  throw new Error(`unknown server ${name}`);
}

function runLoadClient(netns: string, spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        netns,
        process.execPath,
        '--import',
        'tsx',
        LOAD_CLIENT,
        JSON.stringify(spec),
      ],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.on('close', (code) => {
      try {
        resolve(JSON.parse(out) as LoadResult);
      } catch {
        reject(new Error(`load client exited ${code}: ${out}`));
      }
    });
  });
}

/** One single-stream download with atftp (the one client that can ask for windowsize). */
async function atftpOnce(
  layout: Layout,
  netns: string,
  f: (typeof FIGURES)[number],
): Promise<number> {
  const out = `${layout.scratch}/atftp.out`;
  const run = await runClient('atftp', {
    host: HOST,
    port: 69,
    file: 'bench.bin',
    out,
    netns,
    blksize: f.blksize,
    windowsize: f.windowsize,
    timeoutMs: 300_000,
  });
  if (failed(run)) throw new Error(`${run.command}: ${run.output}`);
  if ((await sha256File(out)) !== layout.sha256) throw new Error(`${run.command}: bytes differ`);
  rmSync(out);
  return (FILE_MB * 1024 * 1024) / 1e6 / (run.durationMs / 1000);
}

async function benchServer(name: string, layout: Layout, netns: string): Promise<ServerFigures> {
  const figures: ServerFigures = { name, throughput: {} };
  let server = await start(name, layout, netns);
  try {
    // Does it take windowsize at all? Its OACK says so.
    const probe = await runLoadClient(netns, {
      host: HOST,
      port: 69,
      file: 'bench.bin',
      count: 1,
      options: { blksize: '1428', windowsize: '16' },
      sha256: layout.sha256,
    });
    const windowed = probe.oack?.windowsize === '16';
    for (const f of FIGURES) {
      if (f.windowsize && !windowed) continue;
      const runs: number[] = [];
      for (let i = 0; i < RUNS; i++) runs.push(await atftpOnce(layout, netns, f));
      figures.throughput[f.key] = median(runs);
      console.error(`${name}: ${f.label}: ${runs.map((r) => r.toFixed(1)).join(', ')} MB/s`);
    }
  } finally {
    await server.stop();
  }
  // A fresh server for the load, so its peak RSS is the load's.
  server = await start(name, layout, netns);
  try {
    const mbps: number[] = [];
    const cpu: number[] = [];
    let failures = 0;
    for (let i = 0; i < LOAD_RUNS; i++) {
      const cpuMeter = new ProcessTreeCpu(server.pid);
      const r = await runLoadClient(netns, {
        host: HOST,
        port: 69,
        file: 'bench.bin',
        count: CONCURRENT,
        options: { blksize: '1428' },
        sha256: layout.sha256,
      });
      cpu.push(cpuMeter.stop());
      mbps.push(r.bytes / 1e6 / r.seconds);
      failures += r.failures;
      console.error(
        `${name}: ${CONCURRENT} concurrent: ${(r.bytes / 1e6 / r.seconds).toFixed(1)} MB/s, ` +
          `${r.failures} failures ${r.firstFailures.join('; ')}`,
      );
    }
    figures.load = {
      mbps: median(mbps),
      failures,
      cpuSeconds: median(cpu),
      peakRssMb: peakRssKb(server.pid) / 1024,
    };
  } finally {
    await server.stop();
  }
  return figures;
}

export async function runTftpBench(): Promise<string> {
  const dir = makeTempDir('rtftp-bench');
  const ns = createIsolatedNamespace('bench');
  try {
    const peerRoot = dir.file('peer-root');
    const rtftpRoot = dir.file('rtftp-root');
    mkdirSync(`${rtftpRoot}/default`, { recursive: true });
    const sha256 = writeSeededFile(`${peerRoot}/bench.bin`, FILE_MB * 1024 * 1024, 1234);
    linkSync(`${peerRoot}/bench.bin`, `${rtftpRoot}/default/bench.bin`);
    mkdirSync(dir.file('scratch'));
    const layout: Layout = { peerRoot, rtftpRoot, sha256, scratch: dir.file('scratch') };
    const results: ServerFigures[] = [];
    for (const name of SERVERS) results.push(await benchServer(name, layout, ns.netns));
    return formatTables(results, FIGURES, {
      runs: RUNS,
      loadRuns: LOAD_RUNS,
      fileMb: FILE_MB,
      concurrent: CONCURRENT,
    });
  } finally {
    ns.destroy();
    dir.remove();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(await runTftpBench());
}
