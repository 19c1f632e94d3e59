/**
 * A paired before/after comparison of rtftp: this checkout against another one (say,
 * main), both running at once in one network namespace, with the same load alternating
 * between them pair after pair (the order flips each pair), so a change in the machine's
 * load hits both alike. Each run measures throughput and the server's CPU seconds per GiB.
 * Prints each pair and the per-pair ratios' medians and spread: on a shared machine the
 * spread is the noise.
 *
 * The load: one atftp download (default), or with BENCH_CLIENTS=N the boot storm's load
 * generator (bench/lib/storm-load.c): N clients from their own addresses, each fetching
 * the file at once in BENCH_PROFILE (edk2: blksize 1468 windowsize 4; ipxe: tsize probe,
 * blksize 1432 lock-step).
 *
 *   mkdir /tmp/rtftp-main && git archive main | tar -x -C /tmp/rtftp-main
 *   ln -s "$PWD/node_modules" /tmp/rtftp-main/
 *   BENCH_BASE=/tmp/rtftp-main node --import tsx bench/tftp-paired.ts
 *   BENCH_PAIRS=12 BENCH_FILE_MB=16 BENCH_BLKSIZE=1428 (unset: no options, 512 lock-step)
 *   BENCH_CLIENTS=50 BENCH_PROFILE=edk2
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir, sha256File, writeSeededFile } from '../dataplane/test/helpers/fixtures.ts';
import { createIsolatedNamespace } from '../dataplane/test/helpers/netns.ts';
import { failed, runClient } from '../dataplane/test/helpers/real-clients.ts';
import { stormClientAddress } from '../dataplane/test/helpers/storm-fleet.ts';
import type { StormProfile } from '../dataplane/test/helpers/storm-client.ts';
import { startRtftp } from '../dataplane/test/helpers/tftp-servers.ts';
import type { RunningServer } from '../dataplane/test/helpers/tftp-servers.ts';
import { ProcessTreeCpu } from './lib/process-tree-cpu.ts';
import { buildLoadGenerator, deal, prepareLoad } from './lib/storm-load-runner.ts';
import { median } from './lib/tftp-report.ts';

const BASE = process.env.BENCH_BASE;
const PAIRS = Number(process.env.BENCH_PAIRS ?? 12);
const FILE_MB = Number(process.env.BENCH_FILE_MB ?? 16);
const BLKSIZE = process.env.BENCH_BLKSIZE ? Number(process.env.BENCH_BLKSIZE) : undefined;
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 0);
const PROFILE = (process.env.BENCH_PROFILE ?? 'edk2') as StormProfile;
const HOST = '127.0.0.1';

interface RunFigures {
  mbps: number;
  cpuPerGiB: number;
}

function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.round(q * (s.length - 1))]!;
}

export async function runPairedBench(base: string): Promise<string> {
  const dir = makeTempDir('rtftp-paired');
  const ns = createIsolatedNamespace('paired');
  try {
    mkdirSync(dir.file('root', 'default'), { recursive: true });
    const sha256 = writeSeededFile(dir.file('root', 'default', 'bench.bin'), FILE_MB << 20, 1234);
    const common = { root: dir.file('root'), listen: [HOST], netns: ns.netns };
    const args = ['--grace-period', '1'];
    const before = await startRtftp({
      ...common,
      port: 6911,
      args,
      bin: join(base, 'bin/rtftp.js'),
    });
    const after = await startRtftp({ ...common, port: 6912, args });
    try {
      const gen = CLIENTS > 0 ? buildLoadGenerator('c', dir.path) : undefined;
      const bytes = CLIENTS > 0 ? CLIENTS * (FILE_MB << 20) : FILE_MB << 20;
      const measured = async (server: RunningServer, run: () => Promise<void>) => {
        const cpu = new ProcessTreeCpu(server.pid);
        const t0 = performance.now();
        await run();
        const seconds = (performance.now() - t0) / 1000;
        return { mbps: bytes / 1e6 / seconds, cpuPerGiB: cpu.stop() / (bytes / 2 ** 30) };
      };
      const atftpOnce = async (port: number) => {
        const out = dir.file('download');
        const run = await runClient('atftp', {
          ...{ host: HOST, port, file: 'bench.bin', out, netns: ns.netns, blksize: BLKSIZE },
          timeoutMs: 300_000,
        });
        if (failed(run)) throw new Error(`${run.command}: ${run.output}`);
        if ((await sha256File(out)) !== sha256) throw new Error(`${run.command}: bytes differ`);
        rmSync(out);
      };
      const stormOnce = async (port: number, server: RunningServer) => {
        const clients = Array.from({ length: CLIENTS }, (_, i) => ({
          address: stormClientAddress(i),
          fetches: [{ name: 'bench.bin', payload: 0 }],
        }));
        const specs = deal(clients, 2).map((share) => ({
          ...{ host: HOST, port, profile: PROFILE, retransmitMs: 1000, maxRetries: 8 },
          payloadFiles: [dir.file('root', 'default', 'bench.bin')],
          clients: share,
        }));
        const load = await prepareLoad(gen!, ns.netns, dir.path, specs);
        return measured(server, async () => {
          const results = await load.go();
          const bad = results.flatMap((r) => r.clients).filter((c) => !c.ok);
          if (bad.length) throw new Error(`${bad.length} clients failed: ${bad[0]!.failure}`);
        });
      };
      const once = (port: number): Promise<RunFigures> => {
        const server = port === 6911 ? before : after;
        return gen ? stormOnce(port, server) : measured(server, () => atftpOnce(port));
      };
      const ratios: number[] = [];
      const cpuRatios: number[] = [];
      const lines: string[] = [];
      for (let i = 0; i < PAIRS; i++) {
        // The order flips every pair: whichever runs second never has the edge throughout.
        let b: RunFigures;
        let a: RunFigures;
        if (i % 2) {
          b = await once(6911);
          a = await once(6912);
        } else {
          a = await once(6912);
          b = await once(6911);
        }
        ratios.push(a.mbps / b.mbps);
        cpuRatios.push(a.cpuPerGiB / b.cpuPerGiB);
        lines.push(
          `pair ${i + 1}: base ${b.mbps.toFixed(2)} MB/s ${b.cpuPerGiB.toFixed(2)} CPU s/GiB, ` +
            `this ${a.mbps.toFixed(2)} MB/s ${a.cpuPerGiB.toFixed(2)} CPU s/GiB, ` +
            `ratios ${(a.mbps / b.mbps).toFixed(3)} and ${(a.cpuPerGiB / b.cpuPerGiB).toFixed(3)}`,
        );
      }
      const what =
        CLIENTS > 0
          ? `${CLIENTS} clients at once, ${PROFILE} profile`
          : BLKSIZE
            ? `atftp, blksize ${BLKSIZE}`
            : 'atftp, no options (512-byte lock-step)';
      const spread = (r: number[]) =>
        `median ${median(r).toFixed(3)}, IQR ${quantile(r, 0.25).toFixed(3)}–${quantile(r, 0.75).toFixed(3)}, ` +
        `range ${Math.min(...r).toFixed(3)}–${Math.max(...r).toFixed(3)}`;
      lines.push(
        `${what}, ${FILE_MB} MiB × ${PAIRS} pairs, this/base per pair:`,
        `  throughput ${spread(ratios)}`,
        `  CPU per GiB ${spread(cpuRatios)}`,
      );
      return lines.join('\n');
    } finally {
      await before.stop();
      await after.stop();
    }
  } finally {
    ns.destroy();
    dir.remove();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (!BASE) {
    console.error('BENCH_BASE=<another checkout of rtftp> is required');
    process.exit(2);
  }
  console.log(await runPairedBench(BASE));
}
