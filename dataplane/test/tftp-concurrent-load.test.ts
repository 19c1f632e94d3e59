/**
 * 100 machines booting at once: 100 simultaneous downloads of one 32 MiB file, each
 * from its own loopback address, all byte-identical, with the server's memory bounded.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeTempDir, writeSeededFile } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import {
  serverMissingReason,
  servedTree,
  startServerUnderTest,
} from './helpers/server-under-test.ts';
import { downloadFile } from './helpers/tftp-client.ts';
import { peakRssKb } from './helpers/tftp-servers.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';

const CLIENTS = 100;
const SIZE = 32 * 1024 * 1024;
const RSS_LIMIT_MB = 300;
// Big blocks keep the packet count (and this test's time) low: 3.2 GB at 1428 takes
// ~100 s here, most of it in the Node client. bench/tftp.ts measures 1428 × 16.
const OPTIONS = { blksize: '8192', windowsize: '8', tsize: '0' };

describe('100 simultaneous downloads', { skip: serverMissingReason() }, () => {
  let dir: TempDir;
  let server: RunningServer;
  let expected: string;

  before(async () => {
    dir = makeTempDir('rtftp-load');
    const tree = servedTree(dir.file('root'));
    expected = writeSeededFile(`${tree.defaultDir}/rootfs.img`, SIZE, 77);
    server = await startServerUnderTest(tree);
  });

  after(async () => {
    await server?.stop();
    dir?.remove();
  });

  it(`serves 100 × 32 MiB byte-identical with peak RSS under ${RSS_LIMIT_MB} MB`, async () => {
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) =>
        downloadFile({
          host: '127.0.0.1',
          port: server.port,
          file: 'rootfs.img',
          options: OPTIONS,
          // Distinct client addresses, as 100 boards are (and per-client limits apply per address).
          localAddress: `127.0.1.${i + 1}`,
          retransmitMs: 1000,
          maxRetries: 10,
        }),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    const rssMb = peakRssKb(server.pid) / 1024;
    const bad = results
      .map((r, i) => ({ r, i }))
      .filter(({ r }) => !r.ok || r.sha256 !== expected)
      .map(({ r, i }) => `client ${i}: ${r.failure ?? JSON.stringify(r.error) ?? 'bytes differ'}`);
    const retransmits = results.reduce((n, r) => n + r.retransmits, 0);
    console.log(
      `100 × 32 MiB: ${seconds.toFixed(1)} s, ${((CLIENTS * SIZE) / 1e6 / seconds).toFixed(1)} MB/s aggregate, ` +
        `server peak RSS ${rssMb.toFixed(0)} MB, client retransmits ${retransmits}, failures ${bad.length}`,
    );
    assert.deepEqual(bad, []);
    assert.ok(rssMb < RSS_LIMIT_MB, `server peak RSS ${rssMb.toFixed(0)} MB`);
    assert.ok(server.alive());
  });
});
