/**
 * Admission and retransmission on the wire (docs/admission.md), each with the flag that
 * sets it: proven transfers limited per /24 and by the memory budget, unproven ones
 * evicted oldest first and never a proven one, the negotiated timeout capped, and
 * retransmissions backing off until the stall limit.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { makeTempDir, seededBytes, sha256 } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { servedTree } from './helpers/server-under-test.ts';
import { downloadFile } from './helpers/tftp-client.ts';
import { decodePacket, encodeAck, encodeRrq } from './helpers/tftp-packets.ts';
import type { Packet, TftpOptions } from './helpers/tftp-packets.ts';
import { metricValue, rtftpMissingReason, startRtftp } from './helpers/tftp-servers.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';
import { UdpEndpoint } from './helpers/udp-endpoint.ts';
import { freePort } from './fixtures/nbdkit.ts';

const FILE = seededBytes(512 * 30 + 11, 5);
const BIG_TEXT = Buffer.alloc(2 * 1024 * 1024 + 1, 'line\n');

describe('admission and retransmission on the wire', { skip: rtftpMissingReason() }, () => {
  let dir: TempDir;
  let root: string;
  const servers: RunningServer[] = [];
  const endpoints: UdpEndpoint[] = [];
  /** One server for the limits; each test uses /24s of its own (127.1.N.0/24). */
  let shared: RunningServer;
  let metricsPort: number;

  before(async () => {
    dir = makeTempDir('rtftp-admission');
    const tree = servedTree(dir.file('root'));
    root = tree.root;
    writeFileSync(`${tree.defaultDir}/file.bin`, FILE);
    writeFileSync(`${tree.defaultDir}/big.txt`, BIG_TEXT);
    metricsPort = await freePort();
    shared = await server(
      [
        ...['--max-transfers-per-subnet', '2', '--max-transfer-memory', '1'],
        ...['--max-pending-per-subnet', '2', '--max-timeout', '5'],
      ],
      metricsPort,
    );
  });

  after(async () => {
    for (const e of endpoints) e.close();
    for (const s of servers) await s.stop();
    dir?.remove();
  });

  async function server(args: string[], metricsPort?: number): Promise<RunningServer> {
    const metrics = metricsPort
      ? ['--metrics-port', String(metricsPort), '--metrics-listen', '127.0.0.1']
      : [];
    const s = await startRtftp({ root, args: ['--grace-period', '0', ...metrics, ...args] });
    servers.push(s);
    return s;
  }

  async function endpoint(address: string): Promise<UdpEndpoint> {
    const e = await UdpEndpoint.open(address);
    endpoints.push(e);
    return e;
  }

  async function next(e: UdpEndpoint, ms = 3000): Promise<{ p: Packet; port: number; at: number }> {
    const d = await e.receive(ms);
    assert.ok(d, 'no packet from the server');
    return { p: decodePacket(d.msg), port: d.port, at: performance.now() };
  }

  /** Starts a transfer from `address` and proves it (ACKs the first reply); returns its TID. */
  async function provenTransfer(s: RunningServer, address: string, options: TftpOptions = {}) {
    const e = await endpoint(address);
    await e.send(encodeRrq('file.bin', 'octet', options), s.port);
    const first = await next(e);
    assert.ok(first.p.kind === 'data' || first.p.kind === 'oack', `got ${first.p.kind}`);
    await e.send(encodeAck(first.p.kind === 'data' ? 1 : 0), first.port);
    const after = await next(e);
    return { e, first, after };
  }

  /** A whole download of file.bin from `localAddress`, checked byte for byte. */
  async function assertServed(s: RunningServer, localAddress: string): Promise<void> {
    const r = await downloadFile({
      host: '127.0.0.1',
      port: s.port,
      file: 'file.bin',
      localAddress,
    });
    assert.ok(r.ok && r.sha256 === sha256(FILE), `${localAddress}: ${JSON.stringify(r.error)}`);
  }

  async function metric(sample: string): Promise<number | undefined> {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return metricValue(text, sample);
  }

  it('limits proven transfers per /24: a third client of the subnet is busy, another subnet is served', async () => {
    const s = shared;
    for (const a of ['127.1.4.1', '127.1.4.2']) {
      const { after } = await provenTransfer(s, a);
      assert.equal(after.p.kind, 'data');
    }
    const third = await endpoint('127.1.4.3');
    await third.send(encodeRrq('file.bin'), s.port);
    const busy = await next(third);
    assert.deepEqual(busy.p, { kind: 'error', code: 0, message: 'server busy' });
    await assertServed(s, '127.1.5.1');
    assert.equal(await metric('rtftp_requests_refused_total{reason="subnet-busy"}'), 1);
  });

  it('refuses at ACK 0 a transfer whose buffers pass the memory budget, and serves a small one', async () => {
    const s = shared;
    // blksize 65464 × windowsize 16, twice over for read-ahead: about 2 MiB.
    const { after } = await provenTransfer(s, '127.1.7.1', {
      blksize: '65464',
      windowsize: '16',
    });
    assert.deepEqual(after.p, { kind: 'error', code: 0, message: 'server busy' });
    await assertServed(s, '127.1.7.2');
    assert.equal(await metric('rtftp_requests_refused_total{reason="memory-budget"}'), 1);
    assert.equal(await metric('rtftp_transfer_memory_budget_bytes'), 1024 * 1024);
  });

  it("evicts a subnet's oldest unproven request with ERROR 0, never a proven transfer", async () => {
    const s = shared;
    const proven = await provenTransfer(s, '127.1.8.1');
    assert.equal(proven.after.p.kind, 'data');
    const unproven: UdpEndpoint[] = [];
    for (const a of ['127.1.8.2', '127.1.8.3']) {
      const e = await endpoint(a);
      await e.send(encodeRrq('file.bin'), s.port);
      assert.equal((await next(e)).p.kind, 'data');
      unproven.push(e);
    }
    // A third unproven request of the subnet displaces the oldest one.
    const third = await endpoint('127.1.8.4');
    await third.send(encodeRrq('file.bin'), s.port);
    assert.equal((await next(third)).p.kind, 'data');
    assert.deepEqual((await next(unproven[0]!)).p, {
      kind: 'error',
      code: 0,
      message: 'server busy',
    });
    // The proven transfer goes on to the end.
    let block = proven.after.p.kind === 'data' ? proven.after.p.block : 0;
    for (;;) {
      await proven.e.send(encodeAck(block), proven.first.port);
      const d = await next(proven.e);
      assert.equal(d.p.kind, 'data');
      if (d.p.kind !== 'data') break;
      block = d.p.block;
      if (d.p.data.length < 512) {
        await proven.e.send(encodeAck(block), proven.first.port);
        break;
      }
    }
    assert.equal(block, 31);
  });

  it('acknowledges a timeout only up to --max-timeout', async () => {
    const s = shared;
    for (const [asked, echoed] of [
      ['255', undefined],
      ['6', undefined],
      ['5', '5'],
    ] as const) {
      const e = await endpoint('127.1.9.1');
      await e.send(encodeRrq('file.bin', 'octet', { timeout: asked, blksize: '1024' }), s.port);
      const first = await next(e);
      assert.equal(first.p.kind, 'oack');
      if (first.p.kind === 'oack') {
        assert.equal(first.p.options.timeout, echoed, `timeout ${asked}`);
        assert.equal(first.p.options.blksize, '1024');
      }
    }
  });

  it('backs off retransmissions (doubling, capped) and gives up at the stall limit', async () => {
    const s = await server([
      ...['--timeout-ms', '200', '--max-timeout', '1', '--stall-timeout', '4', '--retries', '100'],
    ]);
    const e = await endpoint('127.1.10.1');
    const sent = performance.now();
    await e.send(encodeRrq('file.bin'), s.port);
    const arrivals: number[] = [];
    let last: Packet | undefined;
    for (;;) {
      const d = await next(e, 6000);
      arrivals.push(d.at - sent);
      last = d.p;
      if (d.p.kind !== 'data') break;
    }
    assert.deepEqual(last, { kind: 'error', code: 0, message: 'timed out' });
    const gaps = arrivals.slice(1).map((t, i) => t - arrivals[i]!);
    // Expected 200, 400, 800, 1000, 1000, then the last wait cut to reach 4000 ms. Timers
    // never fire early, so lower bounds hold on a loaded machine; a fixed 200 ms interval
    // fails the second one already.
    const expected = [200, 400, 800, 1000, 1000];
    expected.forEach((ms, i) =>
      assert.ok(gaps[i]! >= ms * 0.9, `gap ${i + 1}: ${gaps[i]!.toFixed(0)} ms < ${ms}`),
    );
    assert.ok(arrivals.at(-1)! >= 4000 * 0.95, `gave up after ${arrivals.at(-1)!.toFixed(0)} ms`);
    assert.equal(gaps.length, expected.length + 1, `gaps: ${gaps.map((g) => g.toFixed(0))}`);
  });

  it('answers netascii with tsize for a file past 1 MiB without tsize, and still serves it', async () => {
    const r = await downloadFile({
      host: '127.0.0.1',
      port: shared.port,
      file: 'big.txt',
      mode: 'netascii',
      options: { tsize: '0', blksize: '8192' },
      localAddress: '127.1.11.1',
    });
    assert.ok(r.ok, r.failure ?? JSON.stringify(r.error));
    assert.deepEqual(r.oack, { blksize: '8192' });
    const lineFeeds = BIG_TEXT.filter((b) => b === 0x0a).length;
    assert.equal(r.bytes, BIG_TEXT.length + lineFeeds, 'every LF became CR LF');
  });
});
