import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CidrSet,
  cidrContains,
  cidrOf,
  cidrWithin,
  enclosingCidr,
  formatCidr,
  parseCidr,
} from './cidr.ts';

const good: [string, string][] = [
  ['10.0.0.0/8', '10.0.0.0/8'],
  ['10.0.0.5', '10.0.0.5/32'],
  [' 192.168.1.0/24 ', '192.168.1.0/24'],
  ['0.0.0.0/0', '0.0.0.0/0'],
  ['FD00::/8', 'fd00::/8'],
  ['fe80::/10', 'fe80::/10'],
  ['2001:db8:0:0:0:0:0:0/32', '2001:db8::/32'],
  ['::/0', '::/0'],
  ['::1', '::1/128'],
  ['::ffff:10.0.0.0/104', '10.0.0.0/8'],
];
for (const [text, want] of good) {
  test(`parses ${JSON.stringify(text)} as ${want}`, () => {
    const r = parseCidr(text);
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.equal(formatCidr(r.cidr), want);
  });
}

const bad: [string, RegExp][] = [
  ['10.0.0.1/8', /host bits set.*10\.0\.0\.0\/8/],
  ['10.0.0.0/33', /longer than 32/],
  ['fd00::1/8', /host bits set/],
  ['fd00::/129', /longer than 128/],
  ['fe80::1%eth0/128', /zone/],
  ['10.0.0/24', /not an IP address/],
  ['example.com/24', /not an IP address/],
  ['10.0.0.0/8/8', /not a CIDR/],
  ['', /not a CIDR/],
  ['::ffff:10.0.0.0/64', /IPv4-mapped/],
];
for (const [text, error] of bad) {
  test(`refuses ${JSON.stringify(text)}`, () => {
    const r = parseCidr(text);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error, error);
  });
}

test('a set contains exactly the addresses inside its blocks', () => {
  const s = CidrSet.parse(['10.1.0.0/16', '192.168.7.7', 'fd00:1::/32']);
  for (const ip of ['10.1.0.0', '10.1.255.255', '192.168.7.7', 'fd00:1::5', 'FD00:1:ffff::1'])
    assert.equal(s.contains(ip), true, ip);
  for (const ip of ['10.2.0.0', '10.0.255.255', '192.168.7.8', 'fd00:2::1', 'nonsense', ''])
    assert.equal(s.contains(ip), false, ip);
});

test('an IPv4-mapped address is matched as the IPv4 address it is', () => {
  const v4 = CidrSet.parse(['127.0.0.0/8']);
  assert.equal(v4.contains('::ffff:127.0.0.1'), true);
  assert.equal(v4.contains('::ffff:7f00:1'), true);
  const v6only = CidrSet.parse(['::/0']);
  assert.equal(v6only.contains('::ffff:127.0.0.1'), false);
  assert.equal(v6only.contains('::1'), true);
});

test('an empty set contains nothing', () => {
  assert.equal(new CidrSet([]).contains('10.0.0.1'), false);
});

test('the enclosing block of an address: its /24 or /64, whatever the spelling', () => {
  const of = (ip: string) => {
    const c = enclosingCidr(ip, 24, 64);
    return c && formatCidr(c);
  };
  assert.equal(of('10.1.2.3'), '10.1.2.0/24');
  assert.equal(of('::ffff:10.1.2.3'), '10.1.2.0/24');
  assert.equal(of('fd00:1:2:3:4:5:6:7'), 'fd00:1:2:3::/64');
  assert.equal(of('FD00:1:2:3::9'), 'fd00:1:2:3::/64');
  assert.equal(of('fe80::1%eth0'), 'fe80::/64');
  assert.equal(of('not an address'), null);
});

test('cidrContains matches one block, IPv4-mapped addresses as IPv4', () => {
  const b = cidrOf('169.254.0.0/16');
  assert.equal(cidrContains(b, '169.254.169.254'), true);
  assert.equal(cidrContains(b, '::ffff:169.254.1.1'), true);
  assert.equal(cidrContains(b, '169.255.0.1'), false);
  assert.equal(cidrContains(cidrOf('fe80::/10'), 'FEBF::1'), true);
  assert.equal(cidrContains(cidrOf('fe80::/10'), 'fec0::1'), false);
  assert.equal(cidrContains(cidrOf('::/0'), '10.0.0.1'), false, 'families never mix');
  assert.equal(cidrContains(b, 'localhost'), false);
});

test('cidrWithin: a block lies within itself and within wider blocks, never the other way', () => {
  const lo = cidrOf('127.0.0.0/8');
  assert.equal(cidrWithin(cidrOf('127.0.0.1'), lo), true);
  assert.equal(cidrWithin(lo, lo), true);
  assert.equal(cidrWithin(cidrOf('0.0.0.0/0'), lo), false);
  assert.equal(cidrWithin(cidrOf('10.96.0.0/16'), cidrOf('10.96.0.0/12')), true);
  assert.equal(cidrWithin(cidrOf('10.112.0.0/16'), cidrOf('10.96.0.0/12')), false);
  assert.equal(cidrWithin(cidrOf('::1'), lo), false);
});
