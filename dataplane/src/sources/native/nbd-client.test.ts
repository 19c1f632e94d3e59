/**
 * The NBD client against a small in-process NBD server that can behave like servers
 * nbdkit does not imitate: no NBD_OPT_GO, replies out of order, silence, dropped
 * connections. (dataplane/test/native-nbd.test.ts runs it against real nbdkit.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { ByteQueue } from './byte-queue.ts';
import { NbdClient } from './nbd-client.ts';

interface FakeOptions {
  disk: Buffer;
  exportName: string;
  go: boolean;
  /** Answer nothing in the transmission phase. */
  silent?: boolean;
  /** Close each connection after this many reads. */
  dropAfter?: number;
  /** Answer only this many reads per connection, then stay silent. */
  answerOnly?: number;
  /** Send each reply in pieces of 1–7 bytes, each in its own write and tick. */
  dribble?: boolean;
  /** Hold each reply this long before sending it. */
  replyDelayMs?: number;
}

let sending = Promise.resolve();
/** Writes `data` in 1–7 byte pieces, a tick apart, after what was sent before. */
function dribble(sock: Socket, data: Buffer): Promise<void> {
  sending = sending.then(async () => {
    for (let at = 0, k = 1; at < data.length; at += k, k = (k % 7) + 1) {
      sock.write(data.subarray(at, at + k));
      await new Promise((r) => setImmediate(r));
    }
  });
  return sending;
}

async function fakeServer(
  o: FakeOptions,
): Promise<{ server: Server; port: number; connections: number }> {
  const state = { server: createServer(), port: 0, connections: 0 };
  state.server.on('connection', (sock: Socket) => {
    state.connections++;
    const q = new ByteQueue();
    let phase: 'flags' | 'options' | 'transmit' = 'flags';
    let reads = 0;
    const batch: Buffer[] = [];
    sock.on('error', () => {});
    const reply = (opt: number, type: number, data = Buffer.alloc(0)) => {
      const h = Buffer.alloc(20);
      h.writeBigUInt64BE(0x3e889045565a9n, 0);
      h.writeUInt32BE(opt, 8);
      h.writeUInt32BE(type, 12);
      h.writeUInt32BE(data.length, 16);
      sock.write(Buffer.concat([h, data]));
    };
    let option: { type: number; len: number } | null = null;
    const handleOption = (type: number, data: Buffer): void => {
      if (type === 7 && !o.go) return reply(7, 0x80000001);
      if (type === 7) {
        const name = data.toString('utf8', 4, 4 + data.readUInt32BE(0));
        if (name !== o.exportName) return reply(7, 0x80000006, Buffer.from('no such export'));
        const info = Buffer.alloc(12);
        info.writeBigUInt64BE(BigInt(o.disk.length), 2);
        reply(7, 3, info);
        reply(7, 1);
        phase = 'transmit';
      } else if (type === 1) {
        if (data.toString('utf8') !== o.exportName) return void sock.destroy();
        const r = Buffer.alloc(10);
        r.writeBigUInt64BE(BigInt(o.disk.length), 0);
        sock.write(r);
        phase = 'transmit';
      }
    };
    sock.on('data', (chunk) => {
      q.push(chunk);
      for (;;) {
        if (phase === 'flags') {
          if (q.length < 4) return;
          q.take(4);
          phase = 'options';
        } else if (phase === 'options') {
          if (!option) {
            if (q.length < 16) return;
            const h = q.take(16);
            option = { type: h.readUInt32BE(8), len: h.readUInt32BE(12) };
          }
          if (q.length < option.len) return;
          const { type, len } = option;
          option = null;
          handleOption(type, q.take(len));
        } else {
          if (q.length < 28) return;
          const r = q.take(28);
          if (r.readUInt16BE(6) === 2) return void sock.end();
          if (o.silent || (o.answerOnly !== undefined && reads >= o.answerOnly)) continue;
          const offset = Number(r.readBigUInt64BE(16));
          const length = r.readUInt32BE(24);
          const h = Buffer.alloc(16);
          h.writeUInt32BE(0x67446698, 0);
          r.copy(h, 8, 8, 16);
          const whole = Buffer.concat([h, o.disk.subarray(offset, offset + length)]);
          reads++;
          if (o.dribble) {
            void dribble(sock, whole);
            continue;
          }
          if (o.replyDelayMs) {
            setTimeout(() => sock.write(whole), o.replyDelayMs);
            continue;
          }
          batch.push(whole);
          if (reads === o.dropAfter) return void sock.destroy();
          // Answer in reverse order once a few are queued: handles must be honoured.
          if (batch.length >= 3 || q.length < 28)
            sock.write(Buffer.concat(batch.splice(0).reverse()));
        }
      }
    });
    const hello = Buffer.alloc(18);
    hello.write('NBDMAGIC', 0, 'latin1');
    hello.writeBigUInt64BE(0x49484156454f5054n, 8);
    hello.writeUInt16BE(3, 16);
    sock.write(hello);
  });
  await new Promise<void>((r) => state.server.listen(0, '127.0.0.1', r));
  state.port = (state.server.address() as AddressInfo).port;
  return state;
}

const disk = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 7) & 0xff));
const endpoint = (port: number, exportName = 'disk') => ({
  transport: 'tcp' as const,
  host: '127.0.0.1',
  port,
  exportName,
});

test('falls back to NBD_OPT_EXPORT_NAME and matches out-of-order replies by handle', async () => {
  const fake = await fakeServer({ disk, exportName: 'disk', go: false });
  const client = await NbdClient.connect({ endpoint: endpoint(fake.port), maxInFlight: 8 });
  try {
    assert.equal(client.size, disk.length);
    const offsets = Array.from({ length: 40 }, (_, i) => i * 20_000 + i);
    const got = await Promise.all(offsets.map((o) => client.read(o, 1000)));
    got.forEach((b, i) => assert.deepEqual(b, disk.subarray(offsets[i]!, offsets[i]! + 1000)));
  } finally {
    await client.close();
    fake.server.close();
  }
});

test('reassembles replies split anywhere, into the caller buffer at its offset, and splits big reads', async () => {
  const fake = await fakeServer({ disk, exportName: 'disk', go: true, dribble: true });
  const client = await NbdClient.connect({ endpoint: endpoint(fake.port), maxRequestBytes: 512 });
  try {
    const dst = Buffer.alloc(3000, 0xee);
    // 1500 bytes with 512-byte requests: three requests, each reply in 1–7 byte pieces.
    await client.readInto(1001, 1500, dst, 700);
    assert.deepEqual(dst.subarray(700, 2200), disk.subarray(1001, 2501));
    assert.ok(
      dst.subarray(0, 700).every((b) => b === 0xee),
      'nothing written before the offset',
    );
    assert.ok(
      dst.subarray(2200).every((b) => b === 0xee),
      'nothing written after the range',
    );
    assert.deepEqual(await client.read(5, 3), disk.subarray(5, 8));
  } finally {
    await client.close();
    fake.server.close();
  }
});

test('times a read from when it was sent, not from when an earlier read armed the timer', async () => {
  const fake = await fakeServer({
    disk,
    exportName: 'disk',
    go: true,
    answerOnly: 1,
    replyDelayMs: 250,
  });
  const client = await NbdClient.connect({
    endpoint: endpoint(fake.port),
    readTimeoutMs: 300,
    reconnectAttempts: 1,
  });
  try {
    const first = client.read(0, 16); // answered after 250 ms
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    const second = client.read(16, 16); // never answered
    assert.deepEqual(await first, disk.subarray(0, 16));
    await assert.rejects(second, { reason: 'timeout', message: /within 300 ms/ });
    // Failing when the first read's deadline passed would take only about 100 ms.
    assert.ok(Date.now() - started >= 250, `failed after ${Date.now() - started} ms`);
  } finally {
    await client.close();
    fake.server.close();
  }
});

test('names an unknown export, and rejects a read with no reply within the timeout', async () => {
  const fake = await fakeServer({ disk, exportName: 'disk', go: true, silent: true });
  try {
    await assert.rejects(NbdClient.connect({ endpoint: endpoint(fake.port, 'other') }), {
      reason: 'export-not-found',
      message: /no export "other": no such export/,
    });
    const client = await NbdClient.connect({
      endpoint: endpoint(fake.port),
      readTimeoutMs: 300,
      reconnectAttempts: 1,
    });
    const started = Date.now();
    await assert.rejects(client.read(0, 512), { reason: 'timeout' });
    assert.ok(Date.now() - started < 2000);
    await client.close();
  } finally {
    fake.server.close();
  }
});

test('reconnects after the server drops the connection', async () => {
  const fake = await fakeServer({ disk, exportName: 'disk', go: true, dropAfter: 2 });
  const client = await NbdClient.connect({ endpoint: endpoint(fake.port) });
  try {
    await client.read(0, 10);
    await assert.rejects(client.read(10, 10)); // the server hangs up instead of answering
    assert.deepEqual(await client.read(4096, 16), disk.subarray(4096, 4112));
    assert.equal(fake.connections, 2);
    assert.equal(client.healthy, true);
  } finally {
    await client.close();
    fake.server.close();
  }
});

test('refuses a connection nobody listens on as connection-refused', async () => {
  const fake = await fakeServer({ disk, exportName: 'disk', go: true });
  const port = fake.port;
  await new Promise((r) => fake.server.close(r));
  await assert.rejects(NbdClient.connect({ endpoint: endpoint(port) }), {
    reason: 'connection-refused',
  });
});
