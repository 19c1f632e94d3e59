/**
 * HTTP boot throughput, side by side in one run on the same file: rtftp over HTTP from a
 * local dir and from a native NBD disk (ext4 behind nbdkit), nginx (Debian's, from
 * .tools/nginx, sendfile on) serving the same local file, and rtftp over TFTP with atftp
 * at blksize 1428 lock-step and at windowsize 16. The runs are interleaved (run 1 of
 * each, then run 2, ...) so a busy moment of a shared machine hits every server alike.
 * Then N concurrent HTTP downloads from the local dir, each from its own loopback source
 * address (so each is its own client), every body hashed, with rtftp's peak RSS.
 * Prints medians (MB/s) and the ratios the issue sets targets for.
 *
 *   node --import tsx bench/http.ts
 *   BENCH_FILE_MB=100 BENCH_RUNS=5 BENCH_CONCURRENT=100
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { linkSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderNbdConfig } from '../common/src/nbd-config.ts';
import { buildFilesystemImage } from '../dataplane/test/fixtures/disk-image.ts';
import { freePort, startNbdkit } from '../dataplane/test/fixtures/nbdkit.ts';
import type { RunningNbdkit } from '../dataplane/test/fixtures/nbdkit.ts';
import { makeTempDir, sha256File, writeSeededFile } from '../dataplane/test/helpers/fixtures.ts';
import { startRtftpWithHttpBoot } from '../dataplane/test/helpers/http-boot.ts';
import type { RtftpWithHttpBoot } from '../dataplane/test/helpers/http-boot.ts';
import { failed, runClient } from '../dataplane/test/helpers/real-clients.ts';
import { peakRssKb } from '../dataplane/test/helpers/tftp-servers.ts';
import { nginxMissingReason, startNginx } from './lib/nginx.ts';
import type { RunningNginx } from './lib/nginx.ts';
import { median } from './lib/tftp-report.ts';

const FILE_MB = Number(process.env.BENCH_FILE_MB ?? 100);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const CONCURRENT = Number(process.env.BENCH_CONCURRENT ?? 100);
const LOCAL_CLIENT = '127.0.0.2';
const DISK_CLIENT = '127.0.0.3';
const SIZE = FILE_MB * 1024 * 1024;

interface Fetched {
  seconds: number;
  sha256: string;
  bytes: number;
}

/** One GET with curl from `source`; the body hashed as it streams (never on disk). */
function curlGet(url: string, source: string): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('curl', ['-sS', '--fail', '--interface', source, '-o', '-', url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const hash = createHash('sha256');
    let bytes = 0;
    let err = '';
    child.stdout.on('data', (b: Buffer) => {
      bytes += b.length;
      hash.update(b);
    });
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`curl ${url} from ${source}: exit ${code} ${err}`));
      resolve({ seconds: (performance.now() - started) / 1000, sha256: hash.digest('hex'), bytes });
    });
  });
}

async function tftpOnce(
  rtftp: RtftpWithHttpBoot,
  scratch: string,
  windowsize: number | undefined,
  digest: string,
): Promise<number> {
  const out = join(scratch, 'atftp.out');
  const run = await runClient('atftp', {
    host: '127.0.0.1',
    port: rtftp.server.port,
    file: 'bench.bin',
    out,
    blksize: 1428,
    windowsize,
    timeoutMs: 600_000,
  });
  if (failed(run)) throw new Error(`${run.command}: ${run.output}`);
  if ((await sha256File(out)) !== digest) throw new Error(`${run.command}: bytes differ`);
  rmSync(out);
  return SIZE / 1e6 / (run.durationMs / 1000);
}

async function main(): Promise<void> {
  const noNginx = nginxMissingReason();
  if (noNginx) throw new Error(noNginx);
  const dir = makeTempDir('rtftp-bench-http');
  let nbd: RunningNbdkit | undefined;
  let rtftp: RtftpWithHttpBoot | undefined;
  let nginx: RunningNginx | undefined;
  try {
    const root = dir.file('root');
    const peerRoot = dir.file('peer');
    mkdirSync(join(root, 'default'), { recursive: true });
    mkdirSync(peerRoot, { recursive: true });
    const local = join(root, 'default', 'bench.bin');
    const digest = writeSeededFile(local, SIZE, 15);
    linkSync(local, join(peerRoot, 'bench.bin'));
    const image = dir.file('disk.img');
    await buildFilesystemImage(image, {
      fs: 'ext4',
      sizeMiB: FILE_MB + 32,
      blockSize: 4096,
      files: [{ path: 'boot/bench.bin', fromFile: local }],
    });
    nbd = await startNbdkit({ image });
    writeFileSync(
      join(root, `${DISK_CLIENT}.nbd`),
      renderNbdConfig({
        url: nbd.url,
        mounts: [{ partition: 0, mountpoint: '/' }],
        tftpRoot: '/boot',
        backend: 'native',
      }),
    );
    rtftp = await startRtftpWithHttpBoot(root, ['--disk-wait', '30']);
    await rtftp.server.waitForLog((l) => l.msg === 'Disk connected' && l.client === DISK_CLIENT);
    nginx = await startNginx({
      dir: dir.file('nginx'),
      root: peerRoot,
      address: '127.0.0.1',
      port: await freePort(),
    });

    const httpUrl = `http://127.0.0.1:${rtftp.httpPort}/bench.bin`;
    const figures = new Map<string, number[]>();
    const record = (name: string, mbps: number) => {
      figures.set(name, [...(figures.get(name) ?? []), mbps]);
      console.error(`${name}: ${mbps.toFixed(1)} MB/s`);
    };
    const http = async (name: string, url: string, source: string) => {
      const r = await curlGet(url, source);
      if (r.sha256 !== digest || r.bytes !== SIZE) throw new Error(`${name}: bytes differ`);
      record(name, SIZE / 1e6 / r.seconds);
    };
    for (let run = 0; run < RUNS; run++) {
      await http('rtftp HTTP, local dir', httpUrl, LOCAL_CLIENT);
      await http('rtftp HTTP, native NBD disk', httpUrl, DISK_CLIENT);
      await http('nginx, local file', `http://127.0.0.1:${nginx.port}/bench.bin`, LOCAL_CLIENT);
      record('rtftp TFTP, blksize 1428', await tftpOnce(rtftp, dir.path, undefined, digest));
      record(
        'rtftp TFTP, blksize 1428 + windowsize 16',
        await tftpOnce(rtftp, dir.path, 16, digest),
      );
    }

    // N at once, each from its own address (127.0.1.x …): each is its own client.
    const started = performance.now();
    const all = await Promise.allSettled(
      Array.from({ length: CONCURRENT }, (_, i) =>
        curlGet(httpUrl, `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    const good = all.filter(
      (r) => r.status === 'fulfilled' && r.value.sha256 === digest && r.value.bytes === SIZE,
    ).length;
    const firstFailure = all.find((r) => r.status === 'rejected');
    const rssMiB = peakRssKb(rtftp.server.pid) / 1024;

    const med = (name: string) => median(figures.get(name) ?? [NaN]);
    console.log(`\n### HTTP boot, ${FILE_MB} MiB, median of ${RUNS}\n`);
    console.log('| Server | MB/s |\n|---|---:|');
    for (const name of figures.keys()) console.log(`| ${name} | ${med(name).toFixed(1)} |`);
    const localMbps = med('rtftp HTTP, local dir');
    console.log(
      `\nrtftp HTTP local dir / nginx: ${(localMbps / med('nginx, local file')).toFixed(2)} (target ≥ 0.7)`,
    );
    console.log(
      `rtftp HTTP native disk / local dir: ${(med('rtftp HTTP, native NBD disk') / localMbps).toFixed(2)} (target ≥ 0.8)`,
    );
    console.log(
      `${CONCURRENT} concurrent HTTP downloads: ${good}/${CONCURRENT} byte-identical, ` +
        `${((CONCURRENT * SIZE) / 1e6 / seconds).toFixed(1)} MB/s aggregate, ` +
        `rtftp peak RSS ${rssMiB.toFixed(0)} MiB` +
        (firstFailure?.status === 'rejected'
          ? `; first failure: ${String(firstFailure.reason)}`
          : ''),
    );
    if (good !== CONCURRENT) process.exitCode = 1;
  } finally {
    await nginx?.stop();
    await rtftp?.server.stop();
    await nbd?.stop();
    dir.remove();
  }
}

await main();
