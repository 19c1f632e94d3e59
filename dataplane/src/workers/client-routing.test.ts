import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientRouting, routingKeyOf } from './client-routing.ts';
import { resolveWorkers } from './worker-count.ts';

test('a client always maps to the same worker, whatever form its address takes', () => {
  const r = new ClientRouting(4, 12345);
  for (let i = 1; i < 200; i++) {
    const ip = `10.1.${i >> 4}.${i}`;
    assert.equal(r.workerOf(ip), r.workerOf(ip));
    assert.equal(r.workerOf(`::ffff:${ip}`), r.workerOf(ip), 'IPv4-mapped is the IPv4 client');
  }
  // The views and the disk registry key a client without its zone: so does the routing.
  assert.equal(routingKeyOf('fe80::2%eth0'), 'fe80::2');
  assert.equal(r.workerOf('FE80::0:2%eth1'), r.workerOf('fe80::2'));
});

test("a rack's neighbouring addresses spread evenly over the workers", () => {
  for (const workers of [2, 3, 8, 32]) {
    const r = new ClientRouting(workers, 777);
    const counts = new Array<number>(workers).fill(0);
    for (let i = 0; i < 2000; i++) counts[r.workerOf(`10.0.${i >> 8}.${i & 255}`)]! += 1;
    const mean = 2000 / workers;
    for (const c of counts) assert.ok(Math.abs(c - mean) < mean * 0.35, `${counts.join(',')}`);
  }
});

test('clients with a config are spread to within one of each other, and keep their worker until it goes', () => {
  for (const workers of [2, 3, 7]) {
    const r = new ClientRouting(workers, 4242);
    const fresh = new ClientRouting(workers, 4242);
    const ips = Array.from(
      { length: 500 },
      (_, i) => `127.100.${Math.floor(i / 200)}.${(i % 200) + 1}`,
    );
    const given = ips.map((ip) => r.assign(ip));
    assert.ok(Math.max(...r.load) - Math.min(...r.load) <= 1, `${workers}: ${r.load.join(',')}`);
    // A hash alone leaves them further apart: the reason for the assignment.
    const hashed = new Array<number>(workers).fill(0);
    for (const ip of ips) hashed[fresh.workerOf(ip)]! += 1;
    assert.ok(Math.max(...hashed) - Math.min(...hashed) > 1, `hash: ${hashed.join(',')}`);
    ips.forEach((ip, i) => {
      assert.equal(r.workerOf(ip), given[i], 'requests go where the config went');
      assert.equal(r.workerOf(`::ffff:${ip}`), given[i]);
      assert.equal(r.assign(ip), given[i], 'a changed config stays on its worker');
    });
    for (const ip of ips.slice(0, 100)) r.unassign(ip);
    assert.equal(
      r.load.reduce((a, b) => a + b, 0),
      400,
    );
    for (const ip of ips.slice(0, 100)) assert.equal(r.workerOf(ip), fresh.workerOf(ip));
  }
});

test('the mapping depends on a per-process seed (a spoofer cannot aim at a chosen worker)', () => {
  const addresses = Array.from({ length: 64 }, (_, i) => `192.168.7.${i}`);
  const a = new ClientRouting(2, 1);
  const b = new ClientRouting(2, 2);
  assert.ok(addresses.some((ip) => a.workerOf(ip) !== b.workerOf(ip)));
});

test('--workers auto: 1 on up to 2 CPUs, one per CPU above; an explicit count as given', () => {
  assert.equal(resolveWorkers('auto', 1), 1);
  assert.equal(resolveWorkers('auto', 2), 1);
  assert.equal(resolveWorkers('auto', 4), 4);
  assert.equal(resolveWorkers('auto', 32), 32);
  assert.equal(resolveWorkers(3, 2), 3);
  assert.throws(() => new ClientRouting(0), RangeError);
});
