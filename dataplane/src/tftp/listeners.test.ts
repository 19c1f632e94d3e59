/**
 * The listening sockets against a made-up interface list, on real loopback sockets
 * (127.0.0.0/8 is all local on Linux). The network-namespace test
 * (dataplane/test/listen-interfaces.test.ts) runs the same rules on real interfaces.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import { pino } from 'pino';
import { Listeners } from './listeners.ts';
import { parseListenSpec } from './listen-spec.ts';
import type { LocalAddress } from './listen-spec.ts';

function logs() {
  const lines: Record<string, unknown>[] = [];
  // pino writes one JSON line per write() to any object that has the method.
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => lines.push(JSON.parse(line)) },
  );
  return { logger, lines };
}

function listeners(listen: string, interfaces: () => LocalAddress[], port = 0) {
  const parsed = parseListenSpec(listen, undefined, 60_000);
  assert.ok(parsed.ok);
  const log = logs();
  const l = new Listeners(parsed.spec, port, () => {}, log.logger, interfaces);
  return { l, lines: log.lines };
}

const lo = (...addresses: string[]): LocalAddress[] =>
  addresses.map((address) => ({ address, interface: 'eth9' }));

test('a CIDR binds the listed addresses inside it; a rescan follows addresses that come and go', async () => {
  let now = lo('127.0.0.2', '127.0.0.3', '127.0.1.1');
  const { l, lines } = listeners('127.0.0.0/24', () => now);
  try {
    await l.start();
    assert.deepEqual(l.addresses, ['127.0.0.2', '127.0.0.3']);
    now = lo('127.0.0.3', '127.0.0.4');
    await l.rescan();
    assert.deepEqual(l.addresses.sort(), ['127.0.0.3', '127.0.0.4']);
    assert.ok(lines.some((x) => x.msg === 'Address removed' && x.address === '127.0.0.2'));
    assert.ok(lines.some((x) => x.msg === 'Address added' && x.address === '127.0.0.4'));
  } finally {
    l.close();
  }
});

test('a spec matching nothing starts not-ready with one log line, then binds once the address appears', async () => {
  let now = lo('127.0.1.1');
  const { l, lines } = listeners('127.0.0.0/24', () => now);
  try {
    await l.start();
    assert.deepEqual(l.addresses, []);
    await l.rescan();
    await l.rescan();
    const warned = lines.filter((x) => String(x.msg).startsWith('Listen matched no address'));
    assert.equal(warned.length, 1, 'one line, not one per rescan');
    assert.equal(warned[0]!.listen, '127.0.0.0/24');
    now = lo('127.0.0.9');
    await l.rescan();
    assert.deepEqual(l.addresses, ['127.0.0.9']);
  } finally {
    l.close();
  }
});

test('an address that is not on this node is not a start failure; it is tried again', async () => {
  // 192.0.2.0/24 is TEST-NET-1: never a local address, so the bind fails with EADDRNOTAVAIL.
  const { l, lines } = listeners('192.0.2.10', () => []);
  try {
    await l.start();
    assert.deepEqual(l.addresses, []);
    await l.rescan();
    const notAvailable = lines.filter((x) => x.err === 'EADDRNOTAVAIL');
    assert.equal(notAvailable.length, 1, 'logged once');
  } finally {
    l.close();
  }
});

test('a named address whose port is taken stops the start; one chosen only by "all" is a warning', async () => {
  const holder = createSocket('udp4');
  await new Promise<void>((r) => holder.bind(0, '127.0.0.5', () => r()));
  const port = holder.address().port;
  try {
    const named = listeners('127.0.0.5', () => lo('127.0.0.5'), port);
    await assert.rejects(named.l.start(), { code: 'RTFTP_ERR_BIND' });
    named.l.close();
    const all = listeners('all', () => lo('127.0.0.5', '127.0.0.6'), port);
    await all.l.start();
    assert.deepEqual(all.l.addresses, ['127.0.0.6']);
    assert.ok(all.lines.some((x) => x.msg === 'Address not bound' && x.err === 'EADDRINUSE'));
    all.l.close();
  } finally {
    holder.close();
  }
});
