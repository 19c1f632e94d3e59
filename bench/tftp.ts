/**
 * TFTP throughput: rtftp against in.tftpd (tftp-hpa), atftpd and dnsmasq on the same
 * files with the same clients, in one run, inside a network namespace of its own
 * (dnsmasq always binds port 69; in.tftpd needs an interface besides loopback).
 * Peak RSS is over the whole run (single streams and load) per server process.
 * Prints markdown tables: medians of several runs, ratios to tftp-hpa.
 *
 *   npm run bench   |   node --import tsx bench/tftp.ts
 *   BENCH_RUNS=5 BENCH_LOAD_RUNS=3 BENCH_FILE_MB=32 BENCH_CONCURRENT=100
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

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const LOAD_RUNS = Number(process.env.BENCH_LOAD_RUNS ?? 3);
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

/** dnsmasq always takes port 69; the others get ports of their own, so all run at once. */
const PORTS: Record<string, number> = { dnsmasq: 69, rtftp: 6901, 'tftp-hpa': 6902, atftpd: 6903 };

function start(name: string, layout: Layout, netns: string): Promise<RunningServer> {
  const port = PORTS[name];
  if (port === undefined) throw new Error(`unknown server ${name}`);
  const peer = { root: layout.peerRoot, address: HOST, port, netns };
  switch (name) {
    case 'rtftp':
      return startRtftp({
        root: layout.rtftpRoot,
        listen: [HOST],
        port,
        netns,
        args: ['--grace-period', '1'],
      });
    case 'tftp-hpa':
      return startInTftpd(peer);
    case 'atftpd':
      return startAtftpd(peer);
    default:
      return startDnsmasqTftp(peer);
  }
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
  port: number,
  f: (typeof FIGURES)[number],
): Promise<number> {
  const out = `${layout.scratch}/atftp.out`;
  const run = await runClient('atftp', {
    host: HOST,
    port,
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

/**
 * Every server runs at once and the runs are interleaved (run 1 of each server, then
 * run 2, ...), so a burst of load on a shared machine hits all servers alike and the
 * ratios stay meaningful even when absolute figures wander.
 */
async function benchAll(layout: Layout, netns: string): Promise<ServerFigures[]> {
  const servers: RunningServer[] = [];
  try {
    for (const name of SERVERS) servers.push(await start(name, layout, netns));
    const entries = SERVERS.map((name, i) => ({ name, server: servers[i]!, port: PORTS[name]! }));
    const single = new Map<string, number[]>();
    const windowed = new Set<string>();
    for (const e of entries) {
      // Does it take windowsize at all? Its OACK says so.
      const probe = await runLoadClient(netns, {
        host: HOST,
        port: e.port,
        file: 'bench.bin',
        count: 1,
        options: { blksize: '1428', windowsize: '16' },
        sha256: layout.sha256,
      });
      if (probe.oack?.windowsize === '16') windowed.add(e.name);
    }
    for (let run = 0; run < RUNS; run++) {
      for (const f of FIGURES) {
        for (const e of entries) {
          if (f.windowsize && !windowed.has(e.name)) continue;
          const key = `${e.name}|${f.key}`;
          single.set(key, [...(single.get(key) ?? []), await atftpOnce(layout, netns, e.port, f)]);
        }
      }
    }
    const load = new Map<string, { mbps: number[]; cpu: number[]; failures: number }>();
    for (let run = 0; run < LOAD_RUNS; run++) {
      for (const e of entries) {
        const cpuMeter = new ProcessTreeCpu(e.server.pid);
        const r = await runLoadClient(netns, {
          host: HOST,
          port: e.port,
          file: 'bench.bin',
          count: CONCURRENT,
          options: { blksize: '1428' },
          sha256: layout.sha256,
        });
        const l = load.get(e.name) ?? { mbps: [], cpu: [], failures: 0 };
        l.cpu.push(cpuMeter.stop());
        l.mbps.push(r.bytes / 1e6 / r.seconds);
        l.failures += r.failures;
        load.set(e.name, l);
        console.error(
          `${e.name}: ${CONCURRENT} concurrent: ${(r.bytes / 1e6 / r.seconds).toFixed(1)} MB/s, ` +
            `${r.failures} failures ${r.firstFailures.join('; ')}`,
        );
      }
    }
    return entries.map((e) => {
      const throughput: Record<string, number> = {};
      for (const f of FIGURES) {
        const runs = single.get(`${e.name}|${f.key}`);
        if (!runs) continue;
        throughput[f.key] = median(runs);
        console.error(`${e.name}: ${f.label}: ${runs.map((r) => r.toFixed(1)).join(', ')} MB/s`);
      }
      const l = load.get(e.name)!;
      return {
        name: e.name,
        throughput,
        load: {
          mbps: median(l.mbps),
          failures: l.failures,
          cpuSeconds: median(l.cpu),
          peakRssMb: peakRssKb(e.server.pid) / 1024,
        },
      };
    });
  } finally {
    for (const server of servers) await server.stop();
  }
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
    const results = await benchAll(layout, ns.netns);
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
