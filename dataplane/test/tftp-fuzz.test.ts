/**
 * Fuzz: random datagrams and mutations of valid RRQ/WRQ/ACK/ERROR/DATA/OACK packets,
 * sent to the server's port and to a live transfer's TID. Afterwards the server is
 * alive, logged nothing fatal, and still serves a real client a byte-identical file.
 *
 * Two runs: a property (fast-check shrinks a failure to a minimal batch), and a bulk of
 * 10^5 datagrams (issue 12) with a fresh live transfer every thousand — a fuzzed ERROR or
 * ACK ends a transfer, so one TID soon stops being a target — after which the server's
 * memory has stayed bounded and its sockets and files are back to where they were.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { makeTempDir, sha256File, writeSeededFile } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { readdirSync, readFileSync } from 'node:fs';
import { failed, runClient } from './helpers/real-clients.ts';
import {
  serverMissingReason,
  servedTree,
  startServerUnderTest,
} from './helpers/server-under-test.ts';
import {
  decodePacket,
  describePacket,
  encodeAck,
  encodeData,
  encodeError,
  encodeRrq,
  encodeWrq,
} from './helpers/tftp-packets.ts';
import { peakRssKb } from './helpers/tftp-servers.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';
import { UdpEndpoint } from './helpers/udp-endpoint.ts';

const RUNS = Number(process.env.RTFTP_FUZZ_RUNS ?? 1000);
const BULK = Number(process.env.RTFTP_FUZZ_DATAGRAMS ?? 100_000);
const PER_TRANSFER = 1000;
/** Same bound as the spoofed flood: what 10^5 hostile datagrams may cost the server at most. */
const RSS_GROWTH_LIMIT_MB = 64;

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

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
    // Fuzzed requests start transfers nobody finishes: a short stall limit ends them
    // within seconds, so the test can see that nothing they held is left behind.
    server = await startServerUnderTest(tree, ['--stall-timeout', '2']);
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
    await assertStillServes('after-fuzz.bin');
    const errors = server.logs.filter((l) => Number(l.level) >= 50).length;
    console.log(`fuzz: ${RUNS} runs; server alive; ${errors} error-level log lines`);
  });

  /** Alive, nothing fatal logged, and a real client gets the file byte-identical. */
  async function assertStillServes(name: string): Promise<void> {
    assert.ok(server.alive(), 'the server died');
    const fatal = server.logs.filter((l) => Number(l.level) >= 60);
    assert.deepEqual(fatal, [], 'fatal log lines');
    const out = dir.file('out', name);
    const run = await runClient('busybox', {
      host: '127.0.0.1',
      port: server.port,
      file: 'fuzz.bin',
      out,
      blksize: 1024,
    });
    assert.ok(!failed(run), `${run.command}: ${run.output}`);
    assert.equal(await sha256File(out), expected);
  }

  /**
   * A transfer to aim at: a fresh socket that asked for fuzz.bin, and the TID that
   * answered — or why there is none. It retries as a client does: the kernel may give the
   * new socket the port of an earlier round's, whose transfer still runs (until the stall
   * limit), and the server rightly takes the request for a repeat of that one.
   */
  async function liveTransfer(): Promise<{ socket: UdpEndpoint; tid: number } | string> {
    const socket = await UdpEndpoint.open();
    let answer = 'no answer';
    for (let attempt = 0; attempt < 5; attempt++) {
      await socket.send(encodeRrq('fuzz.bin', 'octet', { blksize: '512' }), server.port);
      const first = await socket.receive(1000);
      if (!first) continue;
      if (decodePacket(first.msg).kind !== 'error') return { socket, tid: first.port };
      answer = describePacket(first.msg);
      break;
    }
    socket.close();
    return answer;
  }

  it(`survives ${BULK} fuzzed datagrams at its port and at live transfers with memory and descriptors bounded`, async () => {
    const seed = Number(process.env.RTFTP_FUZZ_SEED ?? Date.now() % 1_000_000);
    const batch = fc.sample(fc.tuple(datagram, fc.boolean()), { numRuns: BULK, seed });
    await assertStillServes('before-bulk.bin');
    const baselineKb = rssKb(server.pid);
    const baselineFds = openFds(server.pid);
    let toTid = 0;
    for (let i = 0; i < batch.length; i += PER_TRANSFER) {
      const live = await liveTransfer();
      if (typeof live === 'string') {
        const recent = server.output.slice(-10).join('\n');
        assert.fail(`seed ${seed}: after ${i} datagrams a request got ${live}; server:\n${recent}`);
      }
      try {
        for (let j = i; j < Math.min(i + PER_TRANSFER, batch.length); j++) {
          const [msg, aimAtTid] = batch[j]!;
          if (aimAtTid) toTid++;
          await live.socket.send(msg, aimAtTid ? live.tid : server.port);
          // Paced: a burst far past the socket's receive buffer would be dropped by the
          // kernel, and a datagram the server never reads tests nothing.
          if (j % 100 === 99) await new Promise((r) => setTimeout(r, 2));
        }
      } finally {
        live.socket.close();
      }
    }
    const peakGrowthMb = (peakRssKb(server.pid) - baselineKb) / 1024;
    await assertStillServes('after-bulk.bin');
    // What fuzzed transfers held goes within the stall limit (2 s) plus a margin.
    let fds = openFds(server.pid);
    for (let t = 0; t < 100 && fds > baselineFds + 2; t++) {
      await new Promise((r) => setTimeout(r, 100));
      fds = openFds(server.pid);
    }
    console.log(
      `fuzz bulk (seed ${seed}): ${batch.length} datagrams, ${toTid} at transfer ports; ` +
        `peak RSS +${peakGrowthMb.toFixed(1)} MB; descriptors ${baselineFds} → ${fds}`,
    );
    assert.ok(
      peakGrowthMb < RSS_GROWTH_LIMIT_MB,
      `seed ${seed}: peak RSS grew by ${peakGrowthMb.toFixed(1)} MB`,
    );
    assert.ok(fds <= baselineFds + 2, `seed ${seed}: ${fds - baselineFds} descriptors leaked`);
  });
});
