import { test } from 'node:test';
import assert from 'node:assert/strict';
import { interfaceMatches, parseListenSpec, selectListenAddresses } from './listen-spec.ts';
import type { LocalAddress } from './listen-spec.ts';

/** A boot-server node under IPVS kube-proxy, with Calico, Docker and a boot NIC. */
const NODE: LocalAddress[] = [
  { interface: 'lo', address: '127.0.0.1' },
  { interface: 'lo', address: '::1' },
  { interface: 'eth0', address: '192.168.50.11' },
  { interface: 'eth0', address: 'fe80::11%eth0' },
  { interface: 'eth1', address: '10.0.0.5' },
  { interface: 'eth1', address: '10.0.0.7' },
  { interface: 'eth1', address: 'fd00:b007::5' },
  { interface: 'eth1.100', address: '10.100.0.5' },
  { interface: 'kube-ipvs0', address: '10.96.0.1' },
  { interface: 'kube-ipvs0', address: '10.96.0.10' },
  { interface: 'kube-ipvs0', address: '10.0.0.200' },
  { interface: 'cali1234abcd', address: 'fe80::ecee:eeff:feee:eeee%cali1234abcd' },
  { interface: 'docker0', address: '172.17.0.1' },
  { interface: 'cni0', address: '10.244.0.1' },
  { interface: 'flannel.1', address: '10.244.0.0' },
  { interface: 'tunl0', address: '10.245.0.1' },
  { interface: 'vxlan.calico', address: '10.246.0.1' },
  { interface: 'cilium_host', address: '10.247.0.1' },
  { interface: 'veth9f8e7d6', address: 'fe80::1%veth9f8e7d6' },
];

function select(listen: string, skip?: string[]): string[] {
  const parsed = parseListenSpec(listen, skip);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  return selectListenAddresses(parsed.spec, NODE).map((s) => s.address);
}

const TABLE: [string, string, string[], string[]?][] = [
  [
    'all skips loopback, kube-ipvs0, CNI, tunnels, docker and veths',
    'all',
    ['192.168.50.11', 'fe80::11%eth0', '10.0.0.5', '10.0.0.7', 'fd00:b007::5', '10.100.0.5'],
  ],
  ['all with an empty skip list takes every address', 'all', NODE.map((a) => a.address), []],
  [
    'a CIDR takes exactly the local addresses inside it, on any interface',
    '10.0.0.0/24',
    ['10.0.0.5', '10.0.0.7', '10.0.0.200'],
  ],
  ['an IPv6 CIDR', 'fd00:b007::/64', ['fd00:b007::5']],
  [
    'an interface name takes its addresses of both families',
    'eth1',
    ['10.0.0.5', '10.0.0.7', 'fd00:b007::5'],
  ],
  ['an interface glob', 'eth1*', ['10.0.0.5', '10.0.0.7', 'fd00:b007::5', '10.100.0.5']],
  ['a CIDR minus an address', '10.0.0.0/24,!10.0.0.7', ['10.0.0.5', '10.0.0.200']],
  ['a CIDR minus an interface', '10.0.0.0/24,!kube-ipvs0', ['10.0.0.5', '10.0.0.7']],
  [
    'only exclusions mean all except them',
    '!eth0,!fd00:b007::/64',
    ['10.0.0.5', '10.0.0.7', '10.100.0.5'],
  ],
  [
    'all plus a skipped interface named explicitly',
    'all,lo',
    [
      '127.0.0.1',
      '::1',
      '192.168.50.11',
      'fe80::11%eth0',
      '10.0.0.5',
      '10.0.0.7',
      'fd00:b007::5',
      '10.100.0.5',
    ],
  ],
  ['an address that is local', '10.0.0.5', ['10.0.0.5']],
  ['an IPv6 address in another spelling binds as listed', 'fd00:b007:0::5', ['fd00:b007::5']],
  ['a link-local address takes its zone from the interface list', 'fe80::11', ['fe80::11%eth0']],
  ['a literal not on this node is kept for the bind to decide', '192.168.1.10', ['192.168.1.10']],
  ['a CIDR matching nothing selects nothing', '192.168.1.0/24', []],
  ['an interface that does not exist selects nothing', 'eth7', []],
  [
    'duplicates are bound once',
    'eth1,10.0.0.5,10.0.0.0/30',
    ['10.0.0.5', '10.0.0.7', 'fd00:b007::5'],
  ],
];

for (const [name, listen, expected, skip] of TABLE) {
  test(`listen "${listen}": ${name}`, () => {
    assert.deepEqual(select(listen, skip), expected);
  });
}

test('an address chosen only by "all" is implicit; named ones are not', () => {
  const parsed = parseListenSpec('all,10.0.0.5,192.168.1.10');
  assert.ok(parsed.ok);
  const byAddress = Object.fromEntries(
    selectListenAddresses(parsed.spec, NODE).map((s) => [s.address, [s.implicit, s.literal]]),
  );
  assert.deepEqual(byAddress['192.168.50.11'], [true, false]);
  assert.deepEqual(byAddress['10.0.0.5'], [false, false]);
  assert.deepEqual(byAddress['192.168.1.10'], [false, true]);
});

test('1,000 Service addresses on kube-ipvs0 are skipped by all and cost little', () => {
  const many: LocalAddress[] = [...NODE];
  for (let i = 0; i < 1000; i++)
    many.push({ interface: 'kube-ipvs0', address: `10.96.${i >> 8}.${i & 255}` });
  const parsed = parseListenSpec('all');
  assert.ok(parsed.ok);
  const started = performance.now();
  const selected = selectListenAddresses(parsed.spec, many);
  // Runs every rescan (10 s); a generous bound, far above the ~2 ms it takes.
  assert.ok(performance.now() - started < 1000);
  assert.equal(selected.length, 6);
});

test('interface globs: * any run, ? one character, nothing else special', () => {
  assert.ok(interfaceMatches('cni*', 'cni0'));
  assert.ok(interfaceMatches('cali*', 'cali1234abcd'));
  assert.ok(interfaceMatches('eth?', 'eth1'));
  assert.ok(!interfaceMatches('eth?', 'eth10'));
  assert.ok(!interfaceMatches('flannel.1', 'flannelx1'), 'a dot is a dot');
  assert.ok(!interfaceMatches('lo', 'lo0'));
});
