/**
 * A paired before/after comparison of rtftp's single-stream throughput: this checkout
 * against another one (say, main), both running at once in one network namespace, with
 * the same atftp download alternating between them pair after pair (the order flips each
 * pair), so a change in the machine's load hits both alike. Prints each pair and the
 * per-pair ratio's median and spread: on a shared machine the spread is the noise.
 *
 *   git worktree add /tmp/rtftp-main main && ln -s "$PWD/node_modules" /tmp/rtftp-main/
 *   BENCH_BASE=/tmp/rtftp-main node --import tsx bench/tftp-paired.ts
 *   BENCH_PAIRS=12 BENCH_FILE_MB=16 BENCH_BLKSIZE=1428 (unset: no options, 512 lock-step)
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir, sha256File, writeSeededFile } from '../dataplane/test/helpers/fixtures.ts';
import { createIsolatedNamespace } from '../dataplane/test/helpers/netns.ts';
import { failed, runClient } from '../dataplane/test/helpers/real-clients.ts';
import { startRtftp } from '../dataplane/test/helpers/tftp-servers.ts';
import { median } from './lib/tftp-report.ts';

const BASE = process.env.BENCH_BASE;
const PAIRS = Number(process.env.BENCH_PAIRS ?? 12);
const FILE_MB = Number(process.env.BENCH_FILE_MB ?? 16);
const BLKSIZE = process.env.BENCH_BLKSIZE ? Number(process.env.BENCH_BLKSIZE) : undefined;
const HOST = '127.0.0.1';

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
      const once = async (port: number): Promise<number> => {
        const out = dir.file('download');
        const run = await runClient('atftp', {
          ...{ host: HOST, port, file: 'bench.bin', out, netns: ns.netns, blksize: BLKSIZE },
          timeoutMs: 300_000,
        });
        if (failed(run)) throw new Error(`${run.command}: ${run.output}`);
        if ((await sha256File(out)) !== sha256) throw new Error(`${run.command}: bytes differ`);
        rmSync(out);
        return (FILE_MB * 1024 * 1024) / 1e6 / (run.durationMs / 1000);
      };
      const ratios: number[] = [];
      const lines: string[] = [];
      for (let i = 0; i < PAIRS; i++) {
        // The order flips every pair: whichever runs second never has the edge throughout.
        let b: number;
        let a: number;
        if (i % 2) {
          b = await once(6911);
          a = await once(6912);
        } else {
          a = await once(6912);
          b = await once(6911);
        }
        ratios.push(a / b);
        lines.push(
          `pair ${i + 1}: base ${b.toFixed(2)} MB/s, this ${a.toFixed(2)} MB/s, ratio ${(a / b).toFixed(3)}`,
        );
      }
      const what = BLKSIZE ? `blksize ${BLKSIZE}` : 'no options (512-byte lock-step)';
      lines.push(
        `${what}, ${FILE_MB} MiB × ${PAIRS} pairs: this/base per pair median ${median(ratios).toFixed(3)}, ` +
          `IQR ${quantile(ratios, 0.25).toFixed(3)}–${quantile(ratios, 0.75).toFixed(3)}, ` +
          `range ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)}`,
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
