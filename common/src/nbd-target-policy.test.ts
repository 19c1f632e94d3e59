import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cidrOf } from './cidr.ts';
import { BUILTIN_RESERVED, NbdTargetPolicy, parseTargetEntry } from './nbd-target-policy.ts';

const entries: [string, string[] | RegExp][] = [
  ['10.0.0.0/8', ['10.0.0.0/8']],
  ['10.0.0.0/8:10809', ['10.0.0.0/8:10809']],
  ['10.0.0.0/8:10809-10900', ['10.0.0.0/8:10809-10900']],
  ['10.0.0.7:10809', ['10.0.0.7/32:10809']],
  ['fd00::/8:10809-10900', ['fd00::/8:10809-10900']],
  ['[fd00::1]:10809', ['[fd00::1]:10809']],
  ['FD00::1', ['fd00::1/128']],
  ['/run/nbd/../nbd/disk.sock', ['/run/nbd/disk.sock']],
  ['10.0.0.1/8', /host bits/],
  ['10.0.0.0/8:0', /not a port/],
  ['10.0.0.0/8:10900-10809', /not a port/],
  ['10.0.0.0/8:65536', /not a port/],
  ['nbd.example:10809', /not an IP address/],
  ['relative.sock', /not an IP address/],
];
for (const [text, want] of entries) {
  test(`target entry ${JSON.stringify(text)}`, () => {
    const r = parseTargetEntry(text);
    if (want instanceof RegExp) {
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.error, want);
      return;
    }
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.deepEqual(NbdTargetPolicy.parse([text]).entries(), want);
    // The canonical text parses back to itself: what the operator renders, the dataplane reads.
    assert.deepEqual(NbdTargetPolicy.parse(want).entries(), want);
  });
}

const policy = NbdTargetPolicy.parse([
  '0.0.0.0/0',
  '::/0',
  '10.1.0.0/16:10809-10810',
  '/run/nbd.sock',
]);

const checks: [string, number, 'ok' | 'reserved' | 'not-allowed'][] = [
  ['192.0.2.10', 10809, 'ok'],
  ['10.1.2.3', 1, 'ok'], // 0.0.0.0/0 allows every port
  ['127.0.0.1', 10809, 'reserved'],
  ['127.8.9.10', 10809, 'reserved'],
  ['::1', 10809, 'reserved'],
  ['::ffff:127.0.0.1', 10809, 'reserved'],
  ['0.0.0.0', 10809, 'reserved'],
  ['::', 10809, 'reserved'],
  ['169.254.169.254', 80, 'reserved'],
  ['fe80::1', 10809, 'reserved'],
  ['2001:db8::1', 10809, 'ok'],
];
for (const [ip, port, want] of checks) {
  test(`0.0.0.0/0 and ::/0: ${ip}:${port} is ${want}`, () => {
    const c = policy.checkAddress(ip, port);
    assert.equal(c.ok ? 'ok' : c.rule, want, c.ok ? '' : c.message);
  });
}

test('a reserved range is allowed only by an entry inside it, and only on its ports', () => {
  const p = NbdTargetPolicy.parse(['0.0.0.0/0', '127.0.0.1:10809', '169.254.0.0/16']);
  assert.equal(p.checkAddress('127.0.0.1', 10809).ok, true);
  const other = p.checkAddress('127.0.0.1', 2379);
  assert.ok(
    !other.ok && other.rule === 'not-allowed' && /other ports than 2379/.test(other.message),
  );
  assert.equal(p.checkAddress('127.0.0.2', 10809).ok, false);
  assert.equal(p.checkAddress('169.254.169.254', 80).ok, true);
});

test('extra reserved ranges (the cluster CIDRs) behave as the built-in ones', () => {
  const reserved = [
    ...BUILTIN_RESERVED,
    { name: "the cluster's Service CIDR", cidr: cidrOf('10.96.0.0/12') },
  ];
  const wide = NbdTargetPolicy.parse(['10.0.0.0/8'], reserved);
  const c = wide.checkAddress('10.96.0.1', 443);
  assert.ok(!c.ok && c.rule === 'reserved');
  assert.match(c.message, /10\.96\.0\.1 is the cluster's Service CIDR \(10\.96\.0\.0\/12\)/);
  assert.equal(wide.checkAddress('10.0.0.1', 443).ok, true);
  const named = NbdTargetPolicy.parse(['10.0.0.0/8', '10.96.0.10:10809'], reserved);
  assert.equal(named.checkAddress('10.96.0.10', 10809).ok, true);
  assert.equal(named.checkAddress('10.96.0.11', 10809).ok, false);
});

test('a name is allowed only when every address it resolves to is', () => {
  const c = policy.checkHost('nbd.example', 10809, ['192.0.2.1', '127.0.0.1']);
  assert.ok(!c.ok && c.rule === 'reserved');
  assert.match(c.message, /^nbd\.example resolves to 127\.0\.0\.1, which is loopback/);
  assert.equal(policy.checkHost('nbd.example', 10809, ['192.0.2.1', '2001:db8::1']).ok, true);
  assert.equal(policy.checkHost('nbd.example', 10809, []).ok, false);
});

test('unix sockets: only listed paths, compared normalised', () => {
  assert.equal(policy.checkSocket('/run/nbd.sock').ok, true);
  assert.equal(policy.checkSocket('/run/./nbd.sock').ok, true);
  assert.equal(policy.checkSocket('/run/containerd/containerd.sock').ok, false);
  assert.equal(policy.checkSocket('/run/x/../containerd/containerd.sock').ok, false);
  assert.equal(NbdTargetPolicy.parse(['0.0.0.0/0']).checkSocket('/run/nbd.sock').ok, false);
});

test('an empty policy allows nothing', () => {
  const none = new NbdTargetPolicy([], []);
  assert.equal(none.checkAddress('192.0.2.1', 10809).ok, false);
  assert.equal(none.checkSocket('/x').ok, false);
});
