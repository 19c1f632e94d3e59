/**
 * The Debian TFTP clients (tftp-hpa, atftp, curl, busybox) against rtftp, each from a
 * network namespace of its own so the server sees real, distinct client addresses.
 *
 * RTFTP_TEST_PEER=in.tftpd runs the same suite against tftp-hpa's server, which proves
 * the harness itself (per-client views are rtftp's and are skipped then).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { makeTempDir, sha256File, writeSeededFile } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { createStarTopology, netnsMissingReason } from './helpers/netns.ts';
import type { StarTopology } from './helpers/netns.ts';
import { CLIENTS, failed, runClient, supportsBlksize } from './helpers/real-clients.ts';
import type { ClientName, ClientRun } from './helpers/real-clients.ts';
import {
  IN_TFTPD,
  peerMissingReason,
  rtftpMissingReason,
  startInTftpd,
  startRtftp,
} from './helpers/tftp-servers.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';

const peer = process.env.RTFTP_TEST_PEER === 'in.tftpd';
const skip = netnsMissingReason() ?? (peer ? peerMissingReason(IN_TFTPD) : rtftpMissingReason());
const noViews = peer ? 'in.tftpd has no per-client views' : false;

const SMALL = 300_001; // not a multiple of any block size
const EXACT = 512 * 64; // a multiple of 512: the transfer ends with an empty DATA
const BIG = 128 * 1024 * 1024; // > 65535 blocks at 512: block numbers roll over
const SECRET = 'outside the root, never served\n';

/** 128 MiB at 512 takes tftp-hpa 262144 round trips; the others ask for bigger blocks. */
const BIG_OPTIONS: Record<ClientName, { blksize?: number; windowsize?: number }> = {
  'tftp-hpa': {},
  atftp: { blksize: 1428, windowsize: 16 },
  curl: { blksize: 1428 },
  busybox: { blksize: 1428 },
};

function explain(run: ClientRun): string {
  return `${run.command} → exit ${run.exitCode}${run.timedOut ? ' (timed out)' : ''}\n${run.output}`;
}

function sizeOrAbsent(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}

describe('real TFTP clients, each from its own address', { skip }, () => {
  let dir: TempDir;
  let topo: StarTopology;
  let server: RunningServer;
  const hashes: Record<string, string> = {};
  let outCount = 0;
  const out = () => dir.file('out', `${outCount++}`);

  before(async () => {
    dir = makeTempDir('rtftp-real-clients');
    mkdirSync(dir.file('out'));
    const root = dir.file('root');
    const files = peer ? root : dir.file('root', 'default');
    hashes.small = writeSeededFile(`${files}/small.bin`, SMALL, 1);
    hashes.exact = writeSeededFile(`${files}/boot/exact.bin`, EXACT, 2);
    hashes.big = writeSeededFile(`${files}/big.bin`, BIG, 3);
    writeFileSync(`${files}/whoami.txt`, 'default\n');
    writeFileSync(dir.file('outside.txt'), SECRET);
    topo = createStarTopology('clients', 2);
    if (!peer) {
      mkdirSync(dir.file('root', topo.clients[0]!.address));
      writeFileSync(dir.file('root', topo.clients[0]!.address, 'whoami.txt'), 'client zero\n');
    }
    const listen = topo.clients.map((c) => c.serverAddress);
    server = peer
      ? await startInTftpd({ root, address: '0.0.0.0', port: 69, netns: topo.server })
      : await startRtftp({ root, listen, port: 0, netns: topo.server });
  });

  after(async () => {
    await server?.stop();
    topo?.destroy();
    dir?.remove();
  });

  function get(
    client: ClientName,
    file: string,
    seat = 0,
    o: { blksize?: number; windowsize?: number } = {},
  ) {
    const c = topo.clients[seat]!;
    const path = out();
    const run = runClient(client, {
      host: c.serverAddress,
      port: server.port,
      file,
      out: path,
      netns: c.netns,
      timeoutMs: 120_000,
      ...o,
    });
    return run.then((r) => ({ run: r, path }));
  }

  async function assertFetched(
    client: ClientName,
    file: string,
    expected: string,
    o: { blksize?: number; windowsize?: number } = {},
  ) {
    const { run, path } = await get(client, file, 0, o);
    assert.ok(!failed(run), explain(run));
    assert.equal(await sha256File(path), expected, `${file} differs: ${explain(run)}`);
    rmSync(path);
  }

  for (const client of CLIENTS) {
    it(`${client}: downloads a small file byte-identical`, async () => {
      await assertFetched(client, 'small.bin', hashes.small!);
      if (supportsBlksize(client))
        await assertFetched(client, 'small.bin', hashes.small!, { blksize: 1428 });
    });

    it(`${client}: downloads a file of whole blocks (ends with an empty DATA)`, async () => {
      await assertFetched(client, 'boot/exact.bin', hashes.exact!);
    });

    it(`${client}: gets its own per-client file before default/`, { skip: noViews }, async () => {
      const own = await get(client, 'whoami.txt', 0);
      assert.ok(!failed(own.run), explain(own.run));
      assert.equal(readFileSync(own.path, 'utf8'), 'client zero\n');
      const other = await get(client, 'whoami.txt', 1);
      assert.ok(!failed(other.run), explain(other.run));
      assert.equal(readFileSync(other.path, 'utf8'), 'default\n');
    });

    it(`${client}: fails on a missing file and writes nothing`, async () => {
      const { run, path } = await get(client, 'no/such/file.bin');
      assert.ok(failed(run), `expected a failure: ${explain(run)}`);
      assert.ok(!run.timedOut, `expected an ERROR, not silence: ${explain(run)}`);
      assert.equal(sizeOrAbsent(path), 0);
    });

    for (const name of ['../outside.txt', '/../../etc/passwd', 'default/../../outside.txt']) {
      it(`${client}: refuses the traversal ${name}`, async () => {
        const { run, path } = await get(client, name);
        assert.ok(failed(run), `expected a refusal: ${explain(run)}`);
        assert.ok(!run.timedOut, `expected an ERROR, not silence: ${explain(run)}`);
        assert.equal(sizeOrAbsent(path), 0, `${name} leaked ${sizeOrAbsent(path)} bytes`);
      });
    }

    const big = BIG_OPTIONS[client];
    const how = big.blksize
      ? `blksize ${big.blksize}${big.windowsize ? ` windowsize ${big.windowsize}` : ''}`
      : 'blksize 512, block numbers rolling over';
    it(`${client}: downloads 128 MiB byte-identical (${how})`, async () => {
      await assertFetched(client, 'big.bin', hashes.big!, big);
    });
  }
});

describe('a client on an IPv6 link-local address', { skip: skip || noViews }, () => {
  it('curl downloads byte-identical from fe80::1%<zone>; the reply comes back on that link', async () => {
    const dir = makeTempDir('rtftp-link-local');
    const topo = createStarTopology('ll', 1, 'ipv6-link-local');
    const seat = topo.clients[0]!;
    let server: RunningServer | undefined;
    try {
      const expected = writeSeededFile(dir.file('root', 'default', 'small.bin'), SMALL, 4);
      server = await startRtftp({
        root: dir.file('root'),
        listen: [`${seat.serverAddress}%${seat.serverIf}`],
        port: 0,
        netns: topo.server,
      });
      const out = dir.file('small.out');
      const run = await runClient('curl', {
        host: `[${seat.serverAddress}%25${seat.clientIf}]`,
        port: server.port,
        file: 'small.bin',
        out,
        netns: seat.netns,
        timeoutMs: 20_000,
      });
      assert.ok(!failed(run), explain(run));
      assert.equal(await sha256File(out), expected);
      const line = await server.waitForLog((l) => l.msg === 'Transfer completed');
      assert.equal(line.client, seat.address);
    } finally {
      await server?.stop();
      topo.destroy();
      dir.remove();
    }
  });
});
