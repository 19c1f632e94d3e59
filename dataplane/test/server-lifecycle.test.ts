/**
 * The running daemon as an operator sees it: limits, graceful shutdown, the HTTP side.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { makeTempDir, seededBytes } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { servedTree } from './helpers/server-under-test.ts';
import { decodePacket, encodeAck, encodeError, encodeRrq } from './helpers/tftp-packets.ts';
import { rtftpMissingReason, startRtftp } from './helpers/tftp-servers.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';
import { UdpEndpoint, freeUdpPort } from './helpers/udp-endpoint.ts';
import { renderNbdConfig } from '../../common/src/nbd-config.ts';
import { buildFilesystemImage } from './fixtures/disk-image.ts';
import { freePort, startNbdkit } from './fixtures/nbdkit.ts';

const FILE = seededBytes(512 * 10 + 7, 77);

async function firstReply(ep: UdpEndpoint, server: RunningServer, rrq: Buffer, timeoutMs = 2000) {
  await ep.send(rrq, server.port);
  const d = await ep.receive(timeoutMs);
  assert.ok(d, 'no reply from the server');
  return { packet: decodePacket(d.msg), port: d.port };
}

describe('daemon lifecycle', { skip: rtftpMissingReason() }, () => {
  let dir: TempDir;
  let root: string;
  before(() => {
    dir = makeTempDir('rtftp-lifecycle');
    const tree = servedTree(dir.file('root'));
    root = dir.file('root');
    writeFileSync(`${tree.defaultDir}/ten.bin`, FILE);
  });
  after(() => dir?.remove());

  it('answers "server busy" over the per-client limit, and serves again once a slot frees', async () => {
    const server = await startRtftp({ root, args: ['--max-transfers-per-client', '1'] });
    const a = await UdpEndpoint.open();
    const b = await UdpEndpoint.open();
    try {
      const first = await firstReply(a, server, encodeRrq('ten.bin'));
      assert.equal(first.packet.kind, 'data');
      // Only a client that answered holds a slot (an unproven request may be spoofed).
      await a.send(encodeAck(1), first.port);
      assert.ok(await a.receive(2000), 'no DATA 2 after ACK 1');
      const busy = await firstReply(b, server, encodeRrq('ten.bin'));
      assert.deepEqual(
        [busy.packet.kind, busy.packet.kind === 'error' && busy.packet.code],
        ['error', 0],
      );
      assert.match(busy.packet.kind === 'error' ? busy.packet.message : '', /server busy/);
      await a.send(encodeError(0, 'enough'), first.port);
      await server.waitForLog((l) => l.msg === 'Transfer failed');
      const again = await firstReply(b, server, encodeRrq('ten.bin'));
      assert.equal(again.packet.kind, 'data');
    } finally {
      a.close();
      b.close();
      await server.stop();
    }
  });

  it('on SIGTERM takes no new request, lets the running transfer finish, then exits', async () => {
    const server = await startRtftp({ root, args: ['--grace-period', '20'] });
    const a = await UdpEndpoint.open();
    const late = await UdpEndpoint.open();
    try {
      const first = await firstReply(a, server, encodeRrq('ten.bin'));
      assert.equal(first.packet.kind, 'data');
      process.kill(server.pid, 'SIGTERM');
      await server.waitForLog((l) => l.msg === 'Shutdown started');
      await late.send(encodeRrq('ten.bin'), server.port);
      assert.equal(
        await late.receive(500),
        undefined,
        'a request after SIGTERM must not be served',
      );
      const received: Buffer[] = [
        first.packet.kind === 'data' ? first.packet.data : Buffer.alloc(0),
      ];
      let block = 1;
      for (;;) {
        await a.send(encodeAck(block), first.port);
        if (received.at(-1)!.length < 512) break;
        const d = await a.receive(2000);
        assert.ok(d);
        const p = decodePacket(d.msg);
        assert.equal(p.kind, 'data');
        if (p.kind !== 'data') break;
        received.push(p.data);
        block = p.block;
      }
      assert.deepEqual(Buffer.concat(received), FILE);
      await server.waitForLog((l) => l.msg === 'Shutdown completed', 5000);
      for (let i = 0; i < 50 && server.alive(); i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(server.alive(), false, 'the daemon must exit after the last transfer');
    } finally {
      a.close();
      late.close();
      await server.stop();
    }
  });

  it('serves /metrics, /healthz and /readyz, and counts a size probe as a probe', async () => {
    const metricsPort = await freePort();
    const server = await startRtftp({
      root,
      args: [
        '--metrics-port',
        String(metricsPort),
        '--metrics-listen',
        '127.0.0.1',
        '--log-level',
        'debug',
      ],
    });
    const a = await UdpEndpoint.open();
    try {
      await server.waitForLog((l) => l.msg === 'HTTP server listening');
      const base = `http://127.0.0.1:${metricsPort}`;
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
      const oack = await firstReply(
        a,
        server,
        encodeRrq('ten.bin', 'octet', { tsize: '0', blksize: '1024' }),
      );
      assert.equal(oack.packet.kind, 'oack');
      assert.equal(oack.packet.kind === 'oack' && oack.packet.options.tsize, String(FILE.length));
      await a.send(encodeError(8, 'size probe done'), oack.port);
      await server.waitForLog((l) => l.msg === 'Size probe answered');
      const text = await (await fetch(`${base}/metrics`)).text();
      assert.match(text, /^rtftp_probes_total 1$/m);
      assert.doesNotMatch(text, /rtftp_transfers_total\{outcome="(failed|aborted)"/);
      assert.match(text, /^rtftp_ready 1$/m);
      assert.match(text, /^process_resident_memory_bytes /m);
    } finally {
      a.close();
      await server.stop();
    }
  });

  it('answers each request from the address it arrived on (multi-homed, IPv4 and IPv6)', async () => {
    // 127.0.0.0/8 is local on Linux: two listening addresses without touching interfaces.
    const server = await startRtftp({ root, listen: ['127.0.0.1', '127.0.0.2', '::1'] });
    const ep4 = await UdpEndpoint.open('127.0.0.1');
    const ep6 = await UdpEndpoint.open('::1');
    try {
      for (const [address, ep] of [
        ['127.0.0.2', ep4],
        ['127.0.0.1', ep4],
        ['::1', ep6],
      ] as const) {
        await ep.send(encodeRrq('ten.bin'), server.port, address);
        const d = await ep.receive(2000);
        assert.ok(d, `no reply to a request sent to ${address}`);
        assert.equal(d.address, address, `the reply to ${address} came from ${d.address}`);
        assert.notEqual(d.port, server.port, 'each transfer runs from its own port');
        await ep.send(encodeError(0, 'enough'), d.port, address);
      }
    } finally {
      ep4.close();
      ep6.close();
      await server.stop();
    }
  });

  it('a port already taken is one clear error, not a crash loop', async () => {
    const port = await freeUdpPort();
    const holder = await UdpEndpoint.open('127.0.0.1', port);
    try {
      await assert.rejects(startRtftp({ root, port }), /Server listening|exited|cannot bind/);
    } finally {
      holder.close();
    }
  });

  it('answers ERROR 0 "disk not ready" while the disk connects past --disk-wait, never default/, then serves the disk', async () => {
    // Its own root: a config for 127.0.0.1 here would send the other tests to a disk.
    const tree = servedTree(dir.file('root-not-ready'));
    writeFileSync(`${tree.defaultDir}/ten.bin`, 'the rescue file from default/');
    const image = dir.file('not-ready.img');
    await buildFilesystemImage(image, {
      fs: 'vfat',
      sizeMiB: 8,
      files: [{ path: 'ten.bin', content: FILE }],
    });
    const nbd = await startNbdkit({ partitions: [image], table: 'mbr' });
    // A stopped server: the TCP connect succeeds, the NBD handshake waits for it.
    nbd.pause();
    const server = await startRtftp({ root: tree.root, args: ['--disk-wait', '1'] });
    const a = await UdpEndpoint.open();
    try {
      writeFileSync(
        `${tree.root}/127.0.0.1.nbd`,
        renderNbdConfig({
          url: nbd.url,
          mounts: [{ partition: 1, mountpoint: '/' }],
          tftpRoot: '/',
          backend: 'native',
        }),
      );
      await server.waitForLog((l) => l.msg === 'Disk connecting');
      // --disk-wait 1: the answer comes after a second of waiting for the disk.
      const { packet: p } = await firstReply(a, server, encodeRrq('ten.bin'), 5000);
      assert.deepEqual(
        [p.kind, p.kind === 'error' && p.code, p.kind === 'error' && p.message],
        ['error', 0, 'disk not ready'],
      );
      await server.waitForLog((l) => l.msg === 'Request refused' && l.reason === 'disk-not-ready');
      nbd.resume();
      await server.waitForLog((l) => l.msg === 'Disk connected', 10_000);
      const served = await firstReply(a, server, encodeRrq('ten.bin'));
      assert.equal(served.packet.kind, 'data');
      assert.deepEqual(
        served.packet.kind === 'data' && served.packet.data,
        FILE.subarray(0, 512),
        'the file from the disk, not the one in default/',
      );
      await a.send(encodeError(0, 'enough'), served.port);
    } finally {
      a.close();
      nbd.resume();
      await server.stop();
      await nbd.stop();
    }
  });
});
