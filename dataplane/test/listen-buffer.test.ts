/**
 * The listening socket's receive buffer (--listen-buffer) and the kernel's drops at it
 * (rtftp_listen_drops_total). When the power comes back, every machine's first request
 * arrives within the same few milliseconds; while the event loop is busy they wait in
 * that buffer, and past it the kernel drops them without a word: each drop costs a
 * client a retransmission timeout, and enough of them in a row fail its boot (the
 * 500-client storm lost clients this way: bench/storm.ts, "RRQs dropped").
 *
 * The server is stopped (SIGSTOP) while a burst of requests arrives, so the burst meets
 * the buffer alone, whatever the machine's speed; then it runs again.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { makeTempDir, writeSeededFile } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { servedTree } from './helpers/server-under-test.ts';
import { downloadFile } from './helpers/tftp-client.ts';
import { encodeRrq } from './helpers/tftp-packets.ts';
import { metricValue, rtftpMissingReason, startRtftpWithHttp } from './helpers/tftp-servers.ts';

const BURST = 2000;
const rmemMax = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'));
  } catch {
    return 0;
  }
})();

/** Sends BURST requests at once from one socket while the server is stopped. */
async function burstWhileStopped(pid: number, port: number): Promise<void> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const rrq = encodeRrq('missing-file.img', 'octet', { blksize: '1468', tsize: '0' });
  process.kill(pid, 'SIGSTOP');
  try {
    for (let i = 0; i < BURST; i++)
      await new Promise<void>((r) => sock.send(rrq, port, '127.0.0.1', () => r()));
  } finally {
    process.kill(pid, 'SIGCONT');
    sock.close();
  }
}

describe('the listening socket under a burst of requests', { skip: rtftpMissingReason() }, () => {
  let dir: TempDir;
  let root: string;
  let expected: string;

  before(() => {
    dir = makeTempDir('rtftp-listen-buffer');
    const tree = servedTree(dir.file('root'));
    root = tree.root;
    expected = writeSeededFile(`${tree.defaultDir}/boot.img`, 100_000, 3);
  });
  after(() => dir?.remove());

  async function drops(kib: number): Promise<{ drops: number; buffer: number }> {
    const { server, httpPort } = await startRtftpWithHttp(root, ['--listen-buffer', String(kib)]);
    try {
      const metrics = async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      const buffer = metricValue(await metrics(), 'rtftp_listen_receive_buffer_bytes') ?? -1;
      await burstWhileStopped(server.pid, server.port);
      // The server reads the kernel's count every 5 s; the burst's drops are all in by then.
      await new Promise((r) => setTimeout(r, 6000));
      const dropped = metricValue(await metrics(), 'rtftp_listen_drops_total') ?? -1;
      // Whatever the burst did, the server serves the next client at once.
      const got = await downloadFile({ host: '127.0.0.1', port: server.port, file: 'boot.img' });
      assert.equal(got.sha256, expected);
      assert.ok(server.alive());
      return { drops: dropped, buffer };
    } finally {
      await server.stop();
    }
  }

  it("the kernel's default buffer: the burst overflows it, and rtftp_listen_drops_total says how much", async () => {
    const r = await drops(0);
    assert.ok(r.buffer > 0, 'the receive buffer is reported');
    assert.ok(r.drops > BURST / 2, `${r.drops} of ${BURST} dropped with a ${r.buffer}-byte buffer`);
  });

  // 2 MiB, not the default 8: the kernel caps the buffer at net.core.rmem_max (4 MiB on
  // these machines, 208 KiB on a stock Debian), and 2 MiB holds the burst.
  it(
    '--listen-buffer 2048: the same burst waits in the buffer, nothing dropped',
    {
      skip:
        rmemMax < 2 * 1024 * 1024
          ? `net.core.rmem_max is ${rmemMax} here: the kernel would cap the buffer below 2 MiB`
          : false,
    },
    async () => {
      const r = await drops(2048);
      // Linux reports twice what it grants.
      assert.equal(r.buffer, 2 * 2048 * 1024);
      assert.equal(r.drops, 0);
    },
  );
});
