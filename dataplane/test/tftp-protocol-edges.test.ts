/**
 * Protocol edge cases on the wire, packet by packet: what a server must refuse, what
 * it must accept, and the retransmission rules that keep a transfer from running wild.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { makeTempDir, seededBytes, sha256 } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import {
  serverMissingReason,
  servedTree,
  startServerUnderTest,
  testingPeer,
} from './helpers/server-under-test.ts';
import { downloadFile } from './helpers/tftp-client.ts';
import {
  ErrorCode,
  decodePacket,
  describePacket,
  encodeAck,
  encodeRrq,
  encodeWrq,
} from './helpers/tftp-packets.ts';
import type { Packet } from './helpers/tftp-packets.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';
import { UdpEndpoint } from './helpers/udp-endpoint.ts';

const BLOCKS20 = 512 * 19 + 100; // 20 blocks at 512
const NETASCII_TEXT = Buffer.from(
  Array.from({ length: 300 }, (_, i) => `line ${i}\n${i % 7 === 0 ? 'bare\rcr\n' : ''}`).join(''),
  'latin1',
);

/** RFC 764 netascii: LF → CR LF, CR → CR NUL. */
function toNetascii(data: Buffer): Buffer {
  return Buffer.from(
    data.toString('latin1').replace(/\r/g, '\r\0').replace(/\n/g, '\r\n'),
    'latin1',
  );
}

describe('TFTP protocol edge cases', { skip: serverMissingReason() }, () => {
  let dir: TempDir;
  let server: RunningServer;
  const data20 = seededBytes(BLOCKS20, 40);
  const socket = () => UdpEndpoint.open();

  before(async () => {
    dir = makeTempDir('rtftp-edges');
    const tree = servedTree(dir.file('root'));
    writeFileSync(`${tree.defaultDir}/twenty.bin`, data20);
    writeFileSync(`${tree.defaultDir}/text.txt`, NETASCII_TEXT);
    server = await startServerUnderTest(tree);
  });

  after(async () => {
    await server?.stop();
    dir?.remove();
  });

  async function firstReply(request: Buffer): Promise<{ p: Packet; port: number; raw: Buffer }> {
    const s = await socket();
    try {
      await s.send(request, server.port);
      const d = await s.receive(3000);
      assert.ok(d, `no answer to ${request.toString('hex')}`);
      return { p: decodePacket(d.msg), port: d.port, raw: d.msg };
    } finally {
      s.close();
    }
  }

  async function assertError(request: Buffer, codes: number[]) {
    const { p, raw } = await firstReply(request);
    assert.equal(p.kind, 'error', `expected ERROR ${codes.join('/')}, got ${describePacket(raw)}`);
    if (p.kind === 'error') assert.ok(codes.includes(p.code), `got ${describePacket(raw)}`);
  }

  it('answers WRQ with ERROR 2 (access violation; the design also allows 4)', async () => {
    await assertError(encodeWrq('upload.bin'), [
      ErrorCode.AccessViolation,
      ErrorCode.IllegalOperation,
    ]);
  });

  it('answers an unknown opcode with ERROR 4', async () => {
    await assertError(Buffer.from('\x00\x63junk\x00octet\x00', 'latin1'), [
      ErrorCode.IllegalOperation,
    ]);
  });

  it('answers mode "mail" with ERROR 4', async () => {
    await assertError(encodeRrq('twenty.bin', 'mail'), [ErrorCode.IllegalOperation]);
  });

  it('accepts upper-case mode and option names', async () => {
    const r = await downloadFile({
      host: '127.0.0.1',
      port: server.port,
      file: 'twenty.bin',
      mode: 'OCTET',
      options: { BLKSIZE: '1024', TSIZE: '0' },
    });
    assert.ok(r.ok, r.failure ?? JSON.stringify(r.error));
    assert.equal(r.sha256, sha256(data20));
    assert.deepEqual(r.oack, { blksize: '1024', tsize: String(BLOCKS20) });
  });

  for (const [name, value] of [
    ['blksize', '7'],
    ['blksize', '65465'],
    ['blksize', '99999999999999999999'],
    ['timeout', '0'],
    ['timeout', '256'],
    ['windowsize', '0'],
    ['windowsize', '65536'],
    ['tsize', '-1'],
  ] as const) {
    it(`does not echo the out-of-range option ${name} ${value}`, async () => {
      const r = await downloadFile({
        host: '127.0.0.1',
        port: server.port,
        file: 'twenty.bin',
        options: { [name]: value },
      });
      // RFC 2347 lets a server refuse the negotiation with ERROR 8 instead of ignoring it.
      if (r.error?.code === ErrorCode.OptionRefused) return;
      assert.ok(r.ok, r.failure ?? JSON.stringify(r.error));
      assert.equal(r.sha256, sha256(data20));
      assert.notEqual(r.oack?.[name], value, `OACK echoed ${name} ${value}`);
      // RFC 2348: a server may answer a too-big blksize with a smaller one, never a bigger.
      if (name === 'blksize' && r.oack?.blksize !== undefined) {
        const b = Number(r.oack.blksize);
        assert.ok(b >= 8 && b <= 65464, `OACK blksize ${b} is out of range`);
      }
    });
  }

  it('converts netascii (LF → CR LF, CR → CR NUL) and reports the converted tsize', async () => {
    const expected = toNetascii(NETASCII_TEXT);
    const r = await downloadFile({
      host: '127.0.0.1',
      port: server.port,
      file: 'text.txt',
      mode: 'netascii',
      options: { tsize: '0' },
      keep: true,
    });
    assert.ok(r.ok, r.failure ?? JSON.stringify(r.error));
    assert.equal(r.data?.toString('latin1'), expected.toString('latin1'));
    assert.equal(r.oack?.tsize, String(expected.length));
  });

  it('starts one transfer for a duplicated RRQ from the same port', async () => {
    const s = await socket();
    try {
      const request = encodeRrq('twenty.bin');
      await s.send(request, server.port);
      await s.send(request, server.port);
      // Not acknowledging: the one transfer retransmits DATA 1; a second would show a second TID.
      const got = await s.collect(2500);
      const tids = new Set(got.map((d) => d.port));
      assert.equal(tids.size, 1, `DATA came from ${tids.size} TIDs: ${[...tids].join(', ')}`);
      assert.ok(got.every((d) => describePacket(d.msg) === 'DATA 1 (512 bytes)'));
    } finally {
      s.close();
    }
  });

  it('ignores a retransmitted RRQ delivered late, after ACK 0 (a reordering link)', async () => {
    // The client retransmitted its RRQ before the OACK reached it; the network delivers
    // that copy after the client's ACK 0. It is the same request, not a new boot.
    const s = await socket();
    try {
      const request = encodeRrq('twenty.bin', 'octet', { blksize: '512', tsize: '0' });
      await s.send(request, server.port);
      const oack = await s.receive(3000);
      assert.ok(oack && decodePacket(oack.msg).kind === 'oack', 'no OACK');
      await s.send(encodeAck(0), oack.port);
      await s.send(request, server.port);
      const received: Buffer[] = [];
      const seen: string[] = [];
      for (let block = 1; ; block++) {
        const d = await s.receive(3000);
        assert.ok(d, `no DATA ${block}; got so far: ${seen.join(', ')}`);
        seen.push(`${describePacket(d.msg)} from ${d.port === oack.port ? 'the TID' : d.port}`);
        const p = decodePacket(d.msg);
        assert.ok(p.kind === 'data' && p.block === block && d.port === oack.port, seen.join(', '));
        received.push(p.data);
        await s.send(encodeAck(block), d.port);
        if (p.data.length < 512) break;
      }
      assert.equal(sha256(Buffer.concat(received)), sha256(data20));
    } finally {
      s.close();
    }
  });

  it('starts a new transfer for an RRQ from the port of a finished transfer', async () => {
    const s = await socket();
    try {
      for (let round = 0; round < 2; round++) {
        await s.send(encodeRrq('twenty.bin'), server.port);
        const received: Buffer[] = [];
        for (let block = 1; ; block++) {
          const d = await s.receive(3000);
          assert.ok(d, `round ${round}: no DATA ${block}`);
          const p = decodePacket(d.msg);
          assert.ok(
            p.kind === 'data' && p.block === block,
            `round ${round}: got ${describePacket(d.msg)}`,
          );
          received.push(p.data);
          await s.send(encodeAck(block), d.port);
          if (p.data.length < 512) break;
        }
        assert.equal(sha256(Buffer.concat(received)), sha256(data20), `round ${round}`);
      }
    } finally {
      s.close();
    }
  });

  /** The rest of twenty.bin from `tid`, lock-step at 512, after `first` (DATA 1) arrived. */
  async function finishTwenty(s: UdpEndpoint, tid: number, first: Packet): Promise<void> {
    assert.ok(first.kind === 'data' && first.block === 1, `expected DATA 1, got ${first.kind}`);
    const received = [first.data];
    for (let block = 1; received.at(-1)!.length === 512; block++) {
      await s.send(encodeAck(block), tid);
      const d = await s.receive(3000);
      assert.ok(d && d.port === tid, `no DATA ${block + 1} from the TID`);
      const p = decodePacket(d.msg);
      assert.ok(p.kind === 'data' && p.block === block + 1, describePacket(d.msg));
      received.push(p.data);
    }
    await s.send(encodeAck(received.length), tid);
    assert.equal(sha256(Buffer.concat(received)), sha256(data20));
  }

  // How rtftp reads a request from the port of a transfer still running
  // (requestFromBusyPort): in.tftpd forks per request and has no such notion.
  const rtftpOnly = testingPeer ? 'rtftp behaviour (RTFTP_TEST_PEER is set)' : undefined;

  it(
    'serves a client that restarted from the same port once its old transfer stalled, without an ERROR from the old TID',
    { skip: rtftpOnly },
    async () => {
      const s = await socket();
      try {
        await s.send(encodeRrq('twenty.bin'), server.port);
        const d1 = await s.receive(3000);
        assert.ok(d1 && decodePacket(d1.msg).kind === 'data');
        await s.send(encodeAck(1), d1.port);
        assert.ok(await s.receive(3000), 'no DATA 2');
        // The client "reboots": it never ACKs DATA 2. Once the server resent it (a timeout
        // without progress), the same request from the same port is a new boot.
        const resent = await s.receive(3000);
        assert.ok(resent && resent.port === d1.port, 'DATA 2 was not resent');
        await s.send(encodeRrq('twenty.bin'), server.port);
        const fresh = await s.receive(3000);
        assert.ok(fresh, 'the restarted request got no answer');
        assert.notEqual(
          fresh.port,
          d1.port,
          `answered from the old TID: ${describePacket(fresh.msg)}`,
        );
        await finishTwenty(s, fresh.port, decodePacket(fresh.msg));
        const stray = (await s.collect(300)).filter((d) => d.port === d1.port);
        assert.deepEqual(
          stray.map((d) => describePacket(d.msg)),
          [],
          'the old TID spoke again',
        );
      } finally {
        s.close();
      }
    },
  );

  it(
    'serves the other file asked from the port of an unanswered OACK, never the first one',
    { skip: rtftpOnly },
    async () => {
      const s = await socket();
      try {
        await s.send(encodeRrq('text.txt', 'octet', { blksize: '1024' }), server.port);
        const oack = await s.receive(3000);
        assert.ok(oack && decodePacket(oack.msg).kind === 'oack');
        await s.send(encodeRrq('twenty.bin'), server.port);
        const d = await s.receive(3000);
        assert.ok(d && d.port !== oack.port, 'no answer from a new TID');
        await finishTwenty(s, d.port, decodePacket(d.msg));
      } finally {
        s.close();
      }
    },
  );

  it(
    'answers a repeated RRQ with the OACK at once after one timeout (the OACK was lost)',
    { skip: rtftpOnly },
    async () => {
      const s = await socket();
      try {
        // timeout 3: the timer alone would resend the OACK at 3 + 6 = 9 s.
        const request = encodeRrq('twenty.bin', 'octet', { blksize: '512', timeout: '3' });
        await s.send(request, server.port);
        const lost = await s.receive(3000);
        assert.ok(lost && decodePacket(lost.msg).kind === 'oack');
        assert.equal(await s.receive(3300), undefined, 'the first timeout after an OACK is quiet');
        const repeatedAt = performance.now();
        await s.send(request, server.port);
        const again = await s.receive(5000);
        assert.ok(again && again.port === lost.port && decodePacket(again.msg).kind === 'oack');
        assert.ok(
          performance.now() - repeatedAt < 4000,
          'the OACK came with the timer, not the repeat',
        );
        await s.send(encodeAck(0), again.port);
        const d1 = await s.receive(3000);
        assert.ok(d1);
        await finishTwenty(s, d1.port, decodePacket(d1.msg));
      } finally {
        s.close();
      }
    },
  );

  it("does not resend on late duplicate ACKs (no Sorcerer's Apprentice storm)", async () => {
    const s = await socket();
    let dataPackets = 0;
    try {
      await s.send(encodeRrq('twenty.bin'), server.port);
      let expected = 1;
      for (;;) {
        const d = await s.receive(3000);
        assert.ok(d, `no DATA ${expected}`);
        const p = decodePacket(d.msg);
        assert.equal(p.kind, 'data', describePacket(d.msg));
        if (p.kind !== 'data') return;
        dataPackets++;
        if (p.block !== expected) continue;
        // The ACK for this block, then a late duplicate of the previous one.
        await s.send(encodeAck(p.block), d.port);
        if (p.block > 1) await s.send(encodeAck(p.block - 1), d.port);
        expected++;
        if (p.data.length < 512) break;
      }
      const extra = await s.collect(500);
      dataPackets += extra.length;
    } finally {
      s.close();
    }
    // 20 blocks; a server that resends on every duplicate ACK sends about twice that.
    assert.ok(dataPackets <= 22, `server sent ${dataPackets} DATA packets for 20 blocks`);
  });

  it('keeps a stranger TID out of a transfer (ICMP port unreachable) and the transfer completes', async () => {
    const s = await socket();
    // Connected, so the kernel reports the ICMP error to it as ECONNREFUSED.
    const stranger = dgram.createSocket('udp4');
    try {
      await s.send(encodeRrq('twenty.bin'), server.port);
      const received: Buffer[] = [];
      for (let block = 1; ; block++) {
        const d = await s.receive(3000);
        assert.ok(d, `no DATA ${block}`);
        const p = decodePacket(d.msg);
        assert.ok(p.kind === 'data' && p.block === block, describePacket(d.msg));
        received.push(p.data);
        if (block === 3) {
          await new Promise<void>((r) => stranger.connect(d.port, '127.0.0.1', () => r()));
          const answer = new Promise<string>((resolve) => {
            stranger.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
            stranger.once('message', (msg) => resolve(`a packet: ${describePacket(msg)}`));
            setTimeout(() => resolve('nothing'), 3000).unref();
          });
          stranger.send(encodeAck(3));
          assert.equal(await answer, 'ECONNREFUSED', 'the stranger is refused by the kernel');
        }
        await s.send(encodeAck(block), d.port);
        if (p.data.length < 512) break;
      }
      assert.equal(sha256(Buffer.concat(received)), sha256(data20));
    } finally {
      s.close();
      stranger.close();
    }
  });
});
