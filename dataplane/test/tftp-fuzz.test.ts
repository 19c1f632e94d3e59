/**
 * Fuzz: random datagrams and mutations of valid RRQ/WRQ/ACK/ERROR/DATA/OACK packets,
 * sent to the server's port and to a live transfer's TID. Afterwards the server is
 * alive, logged nothing fatal, and still serves a real client a byte-identical file.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { makeTempDir, sha256File, writeSeededFile } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { failed, runClient } from './helpers/real-clients.ts';
import {
  serverMissingReason,
  servedTree,
  startServerUnderTest,
} from './helpers/server-under-test.ts';
import {
  decodePacket,
  encodeAck,
  encodeData,
  encodeError,
  encodeRrq,
  encodeWrq,
} from './helpers/tftp-packets.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';
import { UdpEndpoint } from './helpers/udp-endpoint.ts';

const RUNS = Number(process.env.RTFTP_FUZZ_RUNS ?? 1000);

const optionName = fc.oneof(
  fc.constantFrom('blksize', 'tsize', 'timeout', 'windowsize', 'BLKSIZE', 'multicast', 'rollover'),
  fc.string({ maxLength: 12 }),
);
const optionValue = fc.oneof(
  fc.constantFrom('0', '1', '8', '512', '1468', '65464', '65465', '-1', '1e3', '0x10', '', ' 512'),
  fc.integer().map(String),
  fc.string({ maxLength: 24 }),
);
const fileName = fc.oneof(
  fc.constantFrom(
    'fuzz.bin',
    '/fuzz.bin',
    '../fuzz.bin',
    'a/../../x',
    'x.nbd',
    '127.0.0.1.nbd',
    '',
  ),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
);
const mode = fc.oneof(
  fc.constantFrom('octet', 'netascii', 'NETASCII', 'mail', ''),
  fc.string({ maxLength: 10 }),
);

const validPacket = fc.oneof(
  fc
    .tuple(fileName, mode, fc.array(fc.tuple(optionName, optionValue), { maxLength: 6 }))
    .map(([f, m, opts]) => encodeRrq(f, m, Object.fromEntries(opts))),
  fc.tuple(fileName, mode).map(([f, m]) => encodeWrq(f, m)),
  fc.integer({ min: 0, max: 0xffff }).map(encodeAck),
  fc
    .tuple(fc.integer({ min: 0, max: 0xffff }), fc.string({ maxLength: 40 }))
    .map(([c, m]) => encodeError(c, m)),
  fc
    .tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 600 }))
    .map(([b, d]) => encodeData(b, Buffer.from(d))),
);

/** Truncate, flip bytes, strip NULs, or append junk: the malformed packets parsers trip on. */
const mutated = fc
  .tuple(
    validPacket,
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    fc.constantFrom('flip', 'truncate', 'strip-nul', 'append', 'opcode'),
    fc.nat(),
    fc.uint8Array({ maxLength: 64 }),
  )
  .map(([p, flips, how, n, junk]) => {
    const b = Buffer.from(p);
    switch (how) {
      case 'flip':
        for (const [i, v] of flips) if (b.length) b[i % b.length] = v;
        return b;
      case 'truncate':
        return b.subarray(0, b.length ? n % b.length : 0);
      case 'strip-nul':
        return Buffer.from(b.filter((x, i) => i < 2 || x !== 0));
      case 'append':
        return Buffer.concat([b, Buffer.from(junk)]);
      case 'opcode':
        if (b.length >= 2) b.writeUInt16BE(n % 12, 0);
        return b;
    }
  });

const datagram = fc.oneof(
  { weight: 2, arbitrary: validPacket },
  { weight: 4, arbitrary: mutated },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 1500 }).map((a) => Buffer.from(a)) },
);

describe('fuzzed datagrams', { skip: serverMissingReason() }, () => {
  let dir: TempDir;
  let server: RunningServer;
  let expected: string;

  before(async () => {
    dir = makeTempDir('rtftp-fuzz');
    mkdirSync(dir.file('out'));
    const tree = servedTree(dir.file('root'));
    expected = writeSeededFile(`${tree.defaultDir}/fuzz.bin`, 200_003, 90);
    server = await startServerUnderTest(tree);
  });

  after(async () => {
    await server?.stop();
    dir?.remove();
  });

  it(`survives ${RUNS} fuzz runs at its port and at a live transfer's TID, then serves a real client`, async () => {
    const socket = await UdpEndpoint.open();
    try {
      // A live transfer whose TID the fuzzer also targets.
      await socket.send(encodeRrq('fuzz.bin', 'octet', { blksize: '512' }), server.port);
      const first = await socket.receive(3000);
      assert.ok(first && decodePacket(first.msg).kind !== 'error', 'no transfer to fuzz');
      const tid = first.port;
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(datagram, fc.boolean()), { minLength: 1, maxLength: 5 }),
          async (batch) => {
            for (const [msg, toTid] of batch) await socket.send(msg, toTid ? tid : server.port);
            // Replies are irrelevant here; only the server's survival is.
            await socket.collect(2);
            return server.alive();
          },
        ),
        { numRuns: RUNS },
      );
    } finally {
      socket.close();
    }
    assert.ok(server.alive(), 'the server died');
    const fatal = server.logs.filter((l) => Number(l.level) >= 60);
    assert.deepEqual(fatal, [], 'fatal log lines');
    const out = dir.file('out', 'after-fuzz.bin');
    const run = await runClient('busybox', {
      host: '127.0.0.1',
      port: server.port,
      file: 'fuzz.bin',
      out,
      blksize: 1024,
    });
    assert.ok(!failed(run), `${run.command}: ${run.output}`);
    assert.equal(await sha256File(out), expected);
    const errors = server.logs.filter((l) => Number(l.level) >= 50).length;
    console.log(`fuzz: ${RUNS} runs; server alive; ${errors} error-level log lines`);
  });
});
