/**
 * A client that reads slowly costs a fixed buffer and nobody else's time: a raw TCP client
 * asks for a 64 MiB file and takes 1 KiB a second. Meanwhile the daemon reads little of
 * the file (its own read count, /proc/<pid>/io rchar, grows by its two buffers plus what
 * the kernel's socket buffers hold, never the file), its RSS stays put, and another client
 * downloads the whole file, byte-identical, while the slow one has had a few KiB of it.
 * No assertion is timed: a head-of-line block would hold the other client for the slow
 * one's whole download (18 hours), so curl's own --max-time of 60 s is the only clock.
 * A client that takes nothing at all is abandoned after --stall-timeout; one that goes
 * away is logged aborted.
 *
 * On loopback the MSS is 64 KiB, so a receiver taking 1 KiB/s opens its window only every
 * minute or so: the daemon would see no progress for that long. The first server's
 * --stall-timeout is therefore long (the test lasts seconds); the second's is short.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { makeTempDir, writeSeededFile } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { curl, startRtftpWithHttpBoot } from './helpers/http-boot.ts';
import type { RtftpWithHttpBoot } from './helpers/http-boot.ts';
import { metricValue, rtftpMissingReason } from './helpers/tftp-servers.ts';
import { parseCli } from '../src/cli.ts';
import { HTTP_CHUNK_BYTES } from '../src/http-boot/server.ts';
import { resolveWorkers } from '../src/workers/worker-count.ts';
import { sha256 } from './helpers/fixtures.ts';

const SIZE = 64 * 1024 * 1024;
const MIB = 1024 * 1024;

function procField(pid: number, file: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(
    readFileSync(`/proc/${pid}/${file}`, 'utf8'),
  );
  return Number(m?.[1] ?? NaN);
}
const rchar = (pid: number) => procField(pid, 'io', 'rchar');
const rssKb = (pid: number) => procField(pid, 'status', 'VmRSS');

/** A GET from `source` whose body is taken `bytesPerSecond` at a time (0: never). */
function slowClient(port: number, source: string, bytesPerSecond: number) {
  const socket: Socket = connect({ host: '127.0.0.1', port, localAddress: source });
  let received = 0;
  let timer: NodeJS.Timeout | undefined;
  socket.pause();
  socket.on('connect', () => {
    socket.write(`GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n`);
    if (bytesPerSecond > 0)
      timer = setInterval(() => {
        const chunk = socket.read(bytesPerSecond) as Buffer | null;
        if (chunk) received += chunk.length;
      }, 1000);
  });
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  socket.on('error', () => undefined);
  return {
    received: () => received,
    isOpen: () => !socket.destroyed && socket.readyState === 'open',
    closed,
    stop() {
      clearInterval(timer);
      socket.destroy();
    },
  };
}

describe('a slow HTTP reader', { skip: rtftpMissingReason(), timeout: 240_000 }, () => {
  let dir: TempDir;
  let rtftp: RtftpWithHttpBoot;
  let digest = '';

  before(async () => {
    dir = makeTempDir('rtftp-http-slow');
    await mkdir(dir.file('root', 'default'), { recursive: true });
    digest = writeSeededFile(join(dir.file('root', 'default'), 'big.bin'), SIZE, 9);
    rtftp = await startRtftpWithHttpBoot(dir.file('root'), ['--stall-timeout', '300']);
  });

  after(async () => {
    await rtftp?.server.stop();
    dir?.remove();
  });

  const fetchFast = async (port = rtftp.httpPort) => {
    const started = performance.now();
    const r = await curl(`http://127.0.0.1:${port}/big.bin`, [], '127.0.0.31');
    assert.equal(r.status, 200);
    assert.equal(sha256(r.body), digest);
    return performance.now() - started;
  };

  it('holds bounded memory at 1 KiB/s and does not slow another client', async () => {
    const pid = rtftp.server.pid;
    const baselineMs = await fetchFast();
    const rssBefore = rssKb(pid);
    const readBefore = rchar(pid);
    const slow = slowClient(rtftp.httpPort, '127.0.0.30', 1024);
    try {
      // Long enough for every buffer on the way to fill: the daemon then reads no more.
      await new Promise((r) => setTimeout(r, 6000));
      const readBySlow = rchar(pid) - readBefore;
      const withSlowMs = await fetchFast();
      const rssGrowthMiB = (rssKb(pid) - rssBefore) / 1024;
      console.log(
        `# slow reader: daemon read ${(readBySlow / MIB).toFixed(1)} MiB of the 64 MiB file for it; ` +
          `other client ${baselineMs.toFixed(0)} ms alone, ${withSlowMs.toFixed(0)} ms beside it; ` +
          `RSS +${rssGrowthMiB.toFixed(1)} MiB; slow client got ${slow.received()} B`,
      );
      // Two 256 KiB buffers, plus the kernel's socket buffers on loopback (send and receive
      // autotune to a few MiB each): far below the file.
      assert.ok(
        readBySlow < 20 * MIB,
        `read ${readBySlow} bytes ahead of a client that took 6 KiB`,
      );
      assert.ok(rssGrowthMiB < 48, `RSS grew by ${rssGrowthMiB} MiB`);
      // What admission reserved for it: its two stream buffers, and in worker mode the
      // buffer its reads cross the thread boundary in.
      const metrics = await (await fetch(`http://127.0.0.1:${rtftp.metricsPort}/metrics`)).text();
      // The daemon's worker count, as it reads it (RTFTP_WORKERS from the suite, if any).
      const workers = resolveWorkers(parseCli(['--root', '/'], process.env)!.workers);
      assert.equal(
        metricValue(metrics, 'rtftp_transfer_memory_bytes'),
        (workers > 1 ? 3 : 2) * HTTP_CHUNK_BYTES,
      );
      // The other client has the whole file (fetchFast checked its digest) while the slow
      // one, still connected, has had a sliver of it: nobody waited for the slow one.
      assert.equal(slow.isOpen(), true, 'the slow client is still connected');
      assert.ok(slow.received() >= 4 * 1024, 'the slow client is still served');
      assert.ok(slow.received() < SIZE / 100, `slow client got ${slow.received()} B`);
    } finally {
      slow.stop();
    }
    await slow.closed;
    const line = await rtftp.server.waitForLog(
      (l) => l.msg === 'Transfer failed' && l.client === '127.0.0.30',
    );
    assert.equal(line.outcome, 'aborted');
    assert.equal(line.protocol, 'http');
  });

  it('a client that takes nothing is abandoned after --stall-timeout, its slot freed', async () => {
    // Its own server: a short --stall-timeout (see the file's comment).
    const quick = await startRtftpWithHttpBoot(dir.file('root'), ['--stall-timeout', '2']);
    const stuck = slowClient(quick.httpPort, '127.0.0.32', 0);
    try {
      const line = await quick.server.waitForLog(
        (l) => l.msg === 'Transfer failed' && l.client === '127.0.0.32',
        30_000,
      );
      assert.equal(line.outcome, 'timeout');
      assert.equal(line.protocol, 'http');
      // The stuck client never reads, so it never sees the close: it is let go here.
      stuck.stop();
      const metrics = await (await fetch(`http://127.0.0.1:${quick.metricsPort}/metrics`)).text();
      assert.match(metrics, /^rtftp_transfers_active\{protocol="http"\} 0$/m);
      assert.match(metrics, /^rtftp_transfer_memory_bytes 0$/m);
      // The daemon serves on: another client downloads the file whole.
      await fetchFast(quick.httpPort);
    } finally {
      stuck.stop();
      await quick.server.stop();
    }
  });
});
