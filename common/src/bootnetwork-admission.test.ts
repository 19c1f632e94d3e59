import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  admitsNamespace,
  compileBootNetwork,
  type BootNetwork,
  type CompiledBootNetwork,
} from './bootnetwork.ts';
import {
  admitBootClient,
  type AdmissionContext,
  type ResolvedHost,
} from './bootnetwork-admission.ts';
import { cidrOf } from './cidr.ts';
import { parseNbdUrl, type NbdEndpoint } from './nbd-config.ts';
import { BUILTIN_RESERVED } from './nbd-target-policy.ts';

function network(name: string, spec: Record<string, unknown>): CompiledBootNetwork {
  const c = compileBootNetwork({ metadata: { name }, spec } as BootNetwork);
  assert.ok(c.ok, c.ok ? '' : c.problems.join('; '));
  return c.network;
}

const labA = network('lab-a', {
  clientCIDRs: ['10.10.1.0/24'],
  namespaces: { names: ['tenant-a'] },
  nbdServers: [
    { cidr: '0.0.0.0/0' },
    { cidr: '::/0' },
    { cidr: '10.20.0.0/24', ports: [{ port: 10809 }] },
  ],
});
const byLabel = network('team-b', {
  clientCIDRs: ['10.10.2.0/24'],
  namespaces: {
    namespaceSelector: {
      matchLabels: { team: 'b' },
      matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['sandbox'] }],
    },
  },
  nbdServers: [{ cidr: '10.30.0.0/24', ports: [{ port: 10809, endPort: 10810 }] }],
  unixSockets: ['/run/nbd/team-b.sock'],
});
const local = network('local-disks', {
  clientCIDRs: ['10.10.3.0/24'],
  namespaces: { names: ['tenant-c'] },
  nbdServers: [{ cidr: '127.0.0.1', ports: [{ port: 10809 }] }, { cidr: '0.0.0.0/0' }],
});

const labels: Record<string, Record<string, string>> = {
  'tenant-b': { team: 'b' },
  'tenant-b-sandbox': { team: 'b', tier: 'sandbox' },
};
const dns: Record<string, ResolvedHost> = {
  localhost: { addresses: ['127.0.0.1', '::1'] },
  'nbd.lab': { addresses: ['10.20.0.7'] },
  'split.lab': { addresses: ['10.20.0.7', '169.254.169.254'] },
  'gone.lab': { error: 'ENOTFOUND' },
};
const ctx: AdmissionContext = {
  networks: [labA, byLabel, local],
  namespaceLabels: (ns) => labels[ns],
  reserved: [
    ...BUILTIN_RESERVED,
    { name: "the cluster's Service CIDR", cidr: cidrOf('10.96.0.0/12') },
    { name: "the cluster's Pod CIDR", cidr: cidrOf('10.244.0.0/16') },
  ],
  resolved: (h) => dns[h],
};

const endpoint = (url: string): NbdEndpoint => {
  const r = parseNbdUrl(url);
  assert.ok(r.ok);
  return r.endpoint;
};
const admit = (namespace: string, ip: string, url: string) =>
  admitBootClient(ctx, { namespace, ip, endpoint: endpoint(url) });

// [namespace, ip, url, rule that fails (or 'ok'), message pattern]
const table: [string, string, string, string, RegExp][] = [
  ['tenant-a', '10.10.1.5', 'nbd://10.20.0.7/disk', 'ok', /lab-a/],
  ['tenant-a', '10.10.1.5', 'nbd://192.0.2.1:7000/disk', 'ok', /lab-a/],
  ['tenant-a', '10.10.1.5', 'nbd://nbd.lab/disk', 'ok', /lab-a/],
  [
    'tenant-z',
    '10.10.1.5',
    'nbd://10.20.0.7/disk',
    'namespace',
    /no BootNetwork admits namespace tenant-z/,
  ],
  [
    'tenant-a',
    '10.10.2.5',
    'nbd://10.20.0.7/disk',
    'client-ip',
    /spec\.ip: 10\.10\.2\.5 is outside the clientCIDRs .*\(lab-a\)/,
  ],
  ['tenant-a', '10.10.1.5', 'nbd://127.0.0.1:2379/', 'nbd-target', /127\.0\.0\.1 is loopback/],
  ['tenant-a', '10.10.1.5', 'nbd://[::1]/x', 'nbd-target', /::1 is loopback/],
  ['tenant-a', '10.10.1.5', 'nbd://0.0.0.0:2379/', 'nbd-target', /this host/],
  ['tenant-a', '10.10.1.5', 'nbd://169.254.169.254:80/', 'nbd-target', /link-local/],
  ['tenant-a', '10.10.1.5', 'nbd://[fe80::1]/x', 'nbd-target', /link-local/],
  ['tenant-a', '10.10.1.5', 'nbd://10.96.0.1:443/', 'nbd-target', /Service CIDR/],
  ['tenant-a', '10.10.1.5', 'nbd://10.244.3.3/x', 'nbd-target', /Pod CIDR/],
  [
    'tenant-a',
    '10.10.1.5',
    'nbd://localhost/x',
    'nbd-target',
    /localhost resolves to 127\.0\.0\.1, which is loopback/,
  ],
  [
    'tenant-a',
    '10.10.1.5',
    'nbd://split.lab/x',
    'nbd-target',
    /split\.lab resolves to 169\.254\.169\.254/,
  ],
  [
    'tenant-a',
    '10.10.1.5',
    'nbd://gone.lab/x',
    'nbd-target',
    /gone\.lab did not resolve \(ENOTFOUND\)/,
  ],
  ['tenant-a', '10.10.1.5', 'nbd://unknown.lab/x', 'nbd-target', /not been resolved/],
  [
    'tenant-a',
    '10.10.1.5',
    'nbd+unix:///x?socket=/run/containerd/containerd.sock',
    'nbd-target',
    /unix socket .* is not listed/,
  ],
  ['tenant-b', '10.10.2.5', 'nbd://10.30.0.1:10810/x', 'ok', /team-b/],
  ['tenant-b', '10.10.2.5', 'nbd://10.30.0.1:10811/x', 'nbd-target', /other ports than 10811/],
  ['tenant-b', '10.10.2.5', 'nbd://10.20.0.7/x', 'nbd-target', /no allowed range/],
  ['tenant-b', '10.10.2.5', 'nbd+unix:///x?socket=/run/nbd/team-b.sock', 'ok', /team-b/],
  ['tenant-b', '10.10.2.5', 'nbd+unix:///x?socket=/run/nbd/../nbd/team-b.sock', 'ok', /team-b/],
  ['tenant-b-sandbox', '10.10.2.5', 'nbd://10.30.0.1/x', 'namespace', /tenant-b-sandbox/],
  ['tenant-c', '10.10.3.5', 'nbd://127.0.0.1:10809/x', 'ok', /local-disks/],
  ['tenant-c', '10.10.3.5', 'nbd://127.0.0.1:2379/x', 'nbd-target', /other ports than 2379/],
  ['tenant-c', '10.10.3.5', 'nbd://127.0.0.2:10809/x', 'nbd-target', /loopback/],
];
for (const [ns, ip, url, want, message] of table) {
  test(`admission: ${ns} ${ip} ${url} → ${want}`, () => {
    const a = admit(ns, ip, url);
    if (a.ok) {
      assert.equal('ok', want);
      assert.match(a.networks.join(','), message);
    } else {
      assert.equal(a.rule, want, a.message);
      assert.match(a.message, message);
    }
  });
}

test('no message names another namespace, or a BootNetwork that does not admit its own', () => {
  const namespaces = ['tenant-a', 'tenant-b', 'tenant-c', 'tenant-z', 'tenant-b-sandbox'];
  for (const [ns, ip, url] of table) {
    const a = admit(ns, ip, url);
    if (a.ok) continue;
    const foreign = [
      ...namespaces.filter((n) => n !== ns),
      ...ctx.networks.filter((n) => !admitsNamespace(n, ns, labels[ns])).map((n) => n.name),
    ];
    for (const name of foreign)
      assert.doesNotMatch(
        a.message,
        new RegExp(`(^|[^-\\w])${name}([^-\\w]|$)`),
        `${ns}: ${a.message}`,
      );
  }
});

test('an admitted client carries the allow-list it was admitted under', () => {
  const a = admit('tenant-b', '10.10.2.5', 'nbd://10.30.0.1/x');
  assert.ok(a.ok);
  assert.deepEqual(a.nbdAllow, ['10.30.0.0/24:10809-10810', '/run/nbd/team-b.sock']);
});

test('an invalid BootNetwork is refused whole, every problem named', () => {
  const c = compileBootNetwork({
    metadata: { name: 'bad' },
    spec: {
      clientCIDRs: ['10.0.0.1/8', 'fd00::/8'],
      namespaces: { namespaceSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } },
      nbdServers: [{ cidr: '10.0.0.0/8', ports: [{ port: 10900, endPort: 10809 }] }],
      unixSockets: ['relative.sock'],
    },
  });
  assert.ok(!c.ok);
  const all = c.problems.join('\n');
  assert.match(all, /spec\.clientCIDRs\[0\]: host bits set/);
  assert.match(all, /matchExpressions\[0\]\.values: must not be empty for In/);
  assert.match(all, /spec\.nbdServers\[0\]\.ports\[0\]/);
  assert.match(all, /spec\.unixSockets\[0\]/);
  const none = compileBootNetwork({
    metadata: { name: 'n' },
    spec: { clientCIDRs: ['10.0.0.0/8'] },
  });
  assert.ok(!none.ok && /spec\.namespaces/.test(none.problems.join()));
});

test('label selectors: In, NotIn, Exists, DoesNotExist, and {} matches everything', () => {
  const sel = (s: Record<string, unknown>) =>
    network('s', { clientCIDRs: ['10.0.0.0/8'], namespaces: { namespaceSelector: s } });
  const admits = (s: Record<string, unknown>, l: Record<string, string> | undefined) =>
    admitsNamespace(sel(s), 'x', l);
  assert.equal(admits({}, {}), true);
  assert.equal(admits({}, undefined), false, 'labels unknown: no selector matches');
  assert.equal(admits({ matchExpressions: [{ key: 'a', operator: 'Exists' }] }, { a: '' }), true);
  assert.equal(admits({ matchExpressions: [{ key: 'a', operator: 'Exists' }] }, {}), false);
  assert.equal(admits({ matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, {}), true);
  assert.equal(
    admits({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1'] }] }, { a: '2' }),
    false,
  );
  assert.equal(
    admits({ matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, {}),
    true,
  );
  assert.equal(admits({ matchLabels: { a: '1' } }, { a: '1', b: '2' }), true);
  assert.equal(admits({ matchLabels: { a: '1' } }, { a: '2' }), false);
});
