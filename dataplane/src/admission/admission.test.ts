import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TransferAdmission, clientKeyOf, subnetOf } from './admission.ts';
import type { AdmissionLimits, RefusalReason, Ticket } from './admission.ts';

import { OPEN_LIMITS as LIMITS } from './open-limits.ts';

function admission(limits: Partial<AdmissionLimits> = {}) {
  return new TransferAdmission<string>({ ...LIMITS, ...limits });
}

/** Requests for `ip`; returns the ticket and what it displaced. */
function request(a: TransferAdmission<string>, ip: string, name = ip) {
  const r = a.request(ip, name);
  assert.ok(r.ok, `request from ${ip} refused: ${r.ok ? '' : r.reason}`);
  return r;
}

function proven(a: TransferAdmission<string>, ip: string, bytes = 1000): Ticket<string> {
  const { ticket } = request(a, ip);
  assert.deepEqual(a.prove(ticket, bytes), { ok: true });
  return ticket;
}

test('subnets: /24 for IPv4, /64 for IPv6, one per link for link-local', () => {
  assert.equal(subnetOf('10.0.5.77'), '10.0.5.0/24');
  assert.equal(subnetOf('::ffff:10.0.5.77'), '10.0.5.0/24');
  assert.equal(subnetOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.notEqual(subnetOf('fe80::2%eth0'), subnetOf('fe80::2%eth1'));
});

test('client keys: canonical, IPv4-mapped as IPv4, link-local with its zone', () => {
  assert.equal(clientKeyOf('::ffff:10.0.0.5'), '10.0.0.5');
  assert.equal(clientKeyOf('FD00::0:5'), 'fd00::5');
  assert.equal(clientKeyOf('fe80::2%eth1'), 'fe80::2%eth1');
});

test('unproven requests never take a proven slot: spoofing an address cannot lock it out', () => {
  const a = admission({ maxActivePerClient: 2, maxActivePerSubnet: 4, maxActive: 4 });
  for (let i = 0; i < 500; i++) request(a, '10.0.0.9', `spoof${i}`);
  assert.equal(a.active, 0);
  const real = request(a, '10.0.0.9', 'real').ticket;
  assert.deepEqual(a.prove(real, 1000), { ok: true });
  assert.equal(a.active, 1);
});

test("past the per-subnet bound the subnet's oldest pending request goes, never the new one", () => {
  const a = admission({ maxPendingPerSubnet: 3 });
  for (const n of ['a', 'b', 'c']) assert.deepEqual(request(a, '10.0.0.1', n).evicted, []);
  assert.deepEqual(request(a, '10.0.0.2', 'd').evicted, ['a']);
  assert.deepEqual(request(a, '10.0.0.3', 'e').evicted, ['b']);
  // Another subnet has a pool of its own.
  assert.deepEqual(request(a, '10.0.1.1', 'x').evicted, []);
  assert.equal(a.pending, 4);
});

test('past the global bound the fullest subnet loses its oldest; a lone real request stays', () => {
  const a = admission({ maxPending: 5, maxPendingPerSubnet: 100 });
  const real = request(a, '192.168.7.10', 'real').ticket;
  const evicted: string[] = [];
  for (let i = 0; i < 50; i++) evicted.push(...request(a, '10.0.0.1', `flood${i}`).evicted);
  assert.equal(a.pending, 5);
  assert.equal(evicted.length, 46);
  assert.ok(!evicted.includes('real'));
  assert.equal(real.state, 'pending');
  assert.deepEqual(a.prove(real, 1), { ok: true });
});

test('among equally full subnets the oldest request goes (a flood spread over many subnets)', () => {
  const a = admission({ maxPending: 3 });
  request(a, '10.0.1.1', 'first');
  request(a, '10.0.2.1', 'second');
  request(a, '10.0.3.1', 'third');
  assert.deepEqual(request(a, '10.0.4.1', 'fourth').evicted, ['first']);
});

const limitCases: [string, Partial<AdmissionLimits>, string[], string, RefusalReason | null][] = [
  [
    'per exact address',
    { maxActivePerClient: 2 },
    ['10.0.0.1', '10.0.0.1'],
    '10.0.0.1',
    'client-busy',
  ],
  [
    'per address: another address is fine',
    { maxActivePerClient: 2 },
    ['10.0.0.1', '10.0.0.1'],
    '10.0.0.2',
    null,
  ],
  ['per /24', { maxActivePerSubnet: 2 }, ['10.0.0.1', '10.0.0.2'], '10.0.0.3', 'subnet-busy'],
  [
    'per /24: the next /24 is fine',
    { maxActivePerSubnet: 2 },
    ['10.0.0.1', '10.0.0.2'],
    '10.0.1.3',
    null,
  ],
  [
    'per /64',
    { maxActivePerSubnet: 2 },
    ['fd00:0:0:1::a', 'fd00:0:0:1::b'],
    'fd00:0:0:1:ffff::c',
    'subnet-busy',
  ],
  [
    'per /64: the next /64 is fine',
    { maxActivePerSubnet: 2 },
    ['fd00:0:0:1::a', 'fd00:0:0:1::b'],
    'fd00:0:0:2::c',
    null,
  ],
  [
    'IPv4-mapped counts as IPv4',
    { maxActivePerSubnet: 1 },
    ['10.0.0.1'],
    '::ffff:10.0.0.2',
    'subnet-busy',
  ],
  ['overall', { maxActive: 3 }, ['10.0.0.1', '10.1.0.1', '10.2.0.1'], '10.3.0.1', 'server-busy'],
  [
    'memory budget',
    { memoryBudgetBytes: 2000 },
    ['10.0.0.1', '10.1.0.1'],
    '10.2.0.1',
    'memory-budget',
  ],
];
for (const [name, limits, before, next, refusal] of limitCases) {
  const expected = refusal ? { ok: false, reason: refusal } : { ok: true };
  test(`proven transfers are limited ${name}: checked when the request comes`, () => {
    const a = admission(limits);
    for (const ip of before) proven(a, ip);
    const r = a.request(next, 'next');
    if (refusal) assert.deepEqual(r, { ok: false, reason: refusal });
    else assert.ok(r.ok && a.prove(r.ticket, 1000).ok);
  });
  test(`proven transfers are limited ${name}: checked again when it proves itself`, () => {
    const a = admission(limits);
    const ticket = request(a, next).ticket;
    for (const ip of before) proven(a, ip);
    assert.deepEqual(a.prove(ticket, 1000), expected);
  });
}

test('a request is refused at once when proven transfers already fill its limit', () => {
  const a = admission({ maxActivePerClient: 1 });
  proven(a, '10.0.0.1');
  assert.deepEqual(a.request('10.0.0.1', 'again'), { ok: false, reason: 'client-busy' });
  assert.equal(a.pending, 0);
});

test('a proof that does not fit the memory budget is refused; bytes come back on release', () => {
  const a = admission({ memoryBudgetBytes: 10_000 });
  const big = proven(a, '10.0.0.1', 8000);
  const t = request(a, '10.0.0.2').ticket;
  assert.deepEqual(a.prove(t, 4000), { ok: false, reason: 'memory-budget' });
  assert.equal(t.state, 'pending', 'a refused proof leaves the request for its owner to release');
  a.release(big);
  assert.equal(a.memoryReserved, 0);
  assert.deepEqual(a.prove(t, 4000), { ok: true });
  assert.equal(a.memoryReserved, 4000);
});

test('release is idempotent, and an evicted ticket can no longer be proven', () => {
  const a = admission({ maxPendingPerSubnet: 1 });
  const first = request(a, '10.0.0.1').ticket;
  request(a, '10.0.0.2');
  assert.equal(first.state, 'released');
  assert.deepEqual(a.prove(first, 1), { ok: false, reason: 'server-busy' });
  const t = proven(a, '10.0.1.3');
  a.release(t);
  a.release(t);
  assert.deepEqual([a.active, a.pending, a.memoryReserved], [0, 1, 0]);
});

test('random request/prove/release sequences never exceed a bound nor lose a count', () => {
  const ips = ['10.0.0.1', '10.0.0.2', '10.0.1.1', 'fd00::1', 'fd00::2', 'fd00:0:0:1::1'];
  const op = fc.oneof(
    fc.record({ kind: fc.constant('request' as const), ip: fc.constantFrom(...ips) }),
    fc.record({
      kind: fc.constant('prove' as const),
      i: fc.nat(),
      bytes: fc.integer({ min: 1, max: 400 }),
    }),
    fc.record({ kind: fc.constant('release' as const), i: fc.nat() }),
  );
  const limits: AdmissionLimits = {
    maxActive: 5,
    maxActivePerClient: 2,
    maxActivePerSubnet: 3,
    maxPending: 6,
    maxPendingPerSubnet: 3,
    memoryBudgetBytes: 1000,
  };
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const a = new TransferAdmission<number>(limits);
      const tickets: Ticket<number>[] = [];
      for (const o of ops) {
        if (o.kind === 'request') {
          const r = a.request(o.ip, tickets.length);
          if (r.ok) {
            tickets.push(r.ticket);
            for (const e of r.evicted) assert.equal(tickets[e]!.state, 'released');
          }
        } else if (tickets.length) {
          const t = tickets[o.i % tickets.length]!;
          if (o.kind === 'prove') a.prove(t, o.bytes);
          else a.release(t);
        }
        const live = tickets.filter((t) => t.state !== 'released');
        const active = live.filter((t) => t.state === 'active');
        const pending = live.filter((t) => t.state === 'pending');
        assert.equal(a.active, active.length);
        assert.equal(a.pending, pending.length);
        assert.equal(
          a.memoryReserved,
          active.reduce((n, t) => n + t.bytes, 0),
        );
        assert.ok(a.active <= limits.maxActive && a.pending <= limits.maxPending);
        assert.ok(a.memoryReserved <= limits.memoryBudgetBytes);
        const count = (list: Ticket<number>[], key: (t: Ticket<number>) => string) => {
          const m = new Map<string, number>();
          for (const t of list) m.set(key(t), (m.get(key(t)) ?? 0) + 1);
          return Math.max(0, ...m.values());
        };
        assert.ok(count(active, (t) => t.client) <= limits.maxActivePerClient);
        assert.ok(count(active, (t) => t.subnet) <= limits.maxActivePerSubnet);
        assert.ok(count(pending, (t) => t.subnet) <= limits.maxPendingPerSubnet);
      }
    }),
    { numRuns: 300 },
  );
});

test('a client proven by its transport (HTTP) shares every limit and the budget, and never touches the pool', () => {
  const a = admission({
    maxActivePerClient: 2,
    maxActive: 3,
    maxPending: 2,
    maxPendingPerSubnet: 2,
    memoryBudgetBytes: 10_000,
  });
  // A full pool of unproven TFTP requests: admitting HTTP displaces none of them.
  request(a, '10.0.0.7', 'tftp-a');
  request(a, '10.0.0.8', 'tftp-b');
  const http = a.admit('10.0.0.1', 4000);
  assert.ok(http.ok);
  assert.equal(a.pending, 2);
  assert.equal(http.ticket.state, 'active');
  // The per-client limit counts both protocols.
  proven(a, '10.0.0.1', 1000);
  assert.deepEqual(a.admit('10.0.0.1', 1), { ok: false, reason: 'client-busy' });
  // The memory budget is one budget: HTTP's reservation leaves TFTP less.
  assert.deepEqual(a.admit('10.0.0.2', 6000), { ok: false, reason: 'memory-budget' });
  const small = a.admit('10.0.0.2', 5000);
  assert.ok(small.ok);
  assert.deepEqual(a.admit('10.0.0.3', 1), { ok: false, reason: 'server-busy' });
  a.release(http.ticket);
  a.release(http.ticket);
  assert.equal(a.active, 2);
  assert.equal(a.memoryReserved, 6000);
  assert.ok(a.admit('10.0.0.3', 1).ok);
});
