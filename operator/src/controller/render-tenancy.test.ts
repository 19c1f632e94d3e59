import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BootClient } from '../../../common/src/bootclient.ts';
import { compileBootNetwork, type BootNetwork } from '../../../common/src/bootnetwork.ts';
import { parseNbdConfig } from '../../../common/src/nbd-config.ts';
import { BUILTIN_RESERVED } from '../../../common/src/nbd-target-policy.ts';
import { claimKeyOf, type Claim } from './claims.ts';
import { DEFAULT_RENDER_OPTIONS, render, type TenancyInput } from './render.ts';

const OPERATOR_NS = 'rtftp';
const T0 = Date.parse('2026-03-01T00:00:00Z');

function bc(namespace: string, name: string, ip: string, url: string, created: string): BootClient {
  return {
    metadata: { namespace, name, generation: 1, creationTimestamp: created },
    spec: { ip, nbd: { url }, mounts: [{ partition: 1, mountpoint: '/' }], tftpRoot: '/boot' },
  };
}

const compiled = compileBootNetwork({
  metadata: { name: 'shared-pool' },
  spec: {
    clientCIDRs: ['10.10.0.0/16'],
    namespaces: { names: ['tenant-a', 'tenant-b'] },
    nbdServers: [{ cidr: '10.20.0.0/24', ports: [{ port: 10809 }] }],
  },
} as BootNetwork);
if (!compiled.ok) throw new Error(compiled.problems.join('; '));
const pool = compiled.network;

function tenancy(claims: Record<string, Claim> = {}, now = T0): TenancyInput {
  return {
    trusted: (ns) => ns === OPERATOR_NS,
    admission: {
      networks: [pool],
      namespaceLabels: () => undefined,
      reserved: BUILTIN_RESERVED,
      resolved: () => undefined,
    },
    claims: new Map(Object.entries(claims)),
    now,
    claimRetentionMs: 7 * 24 * 3600_000,
  };
}

const cond = (r: ReturnType<typeof render>, key: string, type: string) =>
  r.statuses.get(key)?.conditions.find((c) => c.type === type);

test('a tenant BootClient no BootNetwork admits is NotPermitted, rendered nowhere, claims nothing', () => {
  const r = render(
    [bc('tenant-a', 'meta', '10.10.0.5', 'nbd://169.254.169.254:80/x', '2026-01-01T00:00:00Z')],
    DEFAULT_RENDER_OPTIONS,
    undefined,
    tenancy(),
  );
  assert.equal(cond(r, 'tenant-a/meta', 'Accepted')?.reason, 'NotPermitted');
  assert.match(cond(r, 'tenant-a/meta', 'Accepted')!.message, /169\.254\.169\.254 is link-local/);
  assert.equal(cond(r, 'tenant-a/meta', 'Rendered')?.status, 'False');
  assert.equal(r.configs.size, 0);
  assert.equal(r.claims.size, 0);
});

test('an admitted tenant config carries its nbd_allow; the admin namespace renders as before', () => {
  const r = render(
    [
      bc('tenant-a', 'board', '10.10.0.5', 'nbd://10.20.0.7/disk', '2026-01-01T00:00:00Z'),
      bc(OPERATOR_NS, 'lab', '10.99.0.1', 'nbd://127.0.0.1/disk', '2026-01-01T00:00:00Z'),
    ],
    DEFAULT_RENDER_OPTIONS,
    undefined,
    tenancy(),
  );
  const tenant = parseNbdConfig(r.configs.get('10.10.0.5.nbd')!);
  assert.ok(tenant.ok);
  assert.deepEqual(tenant.config.nbdAllow, ['10.20.0.0/24:10809']);
  assert.match(
    cond(r, 'tenant-a/board', 'Accepted')!.message,
    /admitted by BootNetwork shared-pool/,
  );
  assert.equal(
    r.configs.get('10.99.0.1.nbd'),
    '{"url":"nbd://127.0.0.1/disk","mounts":[{"partition":1,"mountpoint":"/"}],"tftp_root":"/boot"}\n',
  );
  assert.equal(cond(r, `${OPERATOR_NS}/lab`, 'Accepted')?.message, 'spec is valid');
  // Both claims are in the shards, beside their configs.
  const shardOf = (key: string) => [...r.shards].find(([, d]) => d.has(key))?.[0];
  assert.equal(shardOf(claimKeyOf('10.10.0.5')), shardOf('10.10.0.5.nbd'));
  assert.deepEqual(r.claims.get('10.99.0.1'), { namespace: OPERATOR_NS });
});

test('the IP held by tenant-a stays with tenant-a: tenant-b, older, never gets it, and never learns who holds it', () => {
  const b = bc('tenant-b', 'squatter', '10.10.0.5', 'nbd://10.20.0.8/b', '2026-01-01T00:00:00Z');
  const vacant = render(
    [b],
    DEFAULT_RENDER_OPTIONS,
    undefined,
    tenancy({ '10.10.0.5': { namespace: 'tenant-a' } }),
  );
  assert.equal(vacant.configs.size, 0);
  const conflict = cond(vacant, 'tenant-b/squatter', 'Conflict')!;
  assert.equal(conflict.reason, 'ClaimedByAnotherNamespace');
  for (const c of vacant.statuses.get('tenant-b/squatter')!.conditions)
    assert.doesNotMatch(c.message, /tenant-a/);
  assert.ok(vacant.claims.get('10.10.0.5')?.vacantSince, 'kept, vacant');

  const a = bc('tenant-a', 'board', '10.10.0.5', 'nbd://10.20.0.7/a', '2026-02-01T00:00:00Z');
  const back = render(
    [b, a],
    DEFAULT_RENDER_OPTIONS,
    undefined,
    tenancy(Object.fromEntries(vacant.claims)),
  );
  assert.match(back.configs.get('10.10.0.5.nbd')!, /\/a"/);
  assert.equal(cond(back, 'tenant-b/squatter', 'Conflict')?.status, 'True');
});

test('without a ledger (first start) the oldest wins across namespaces and is recorded', () => {
  const a = bc('tenant-a', 'board', '10.10.0.5', 'nbd://10.20.0.7/a', '2026-02-01T00:00:00Z');
  const b = bc('tenant-b', 'other', '10.10.0.5', 'nbd://10.20.0.8/b', '2026-01-01T00:00:00Z');
  const r = render([a, b], DEFAULT_RENDER_OPTIONS, undefined, tenancy());
  assert.match(r.configs.get('10.10.0.5.nbd')!, /\/b"/);
  assert.deepEqual(r.claims.get('10.10.0.5'), { namespace: 'tenant-b' });
  assert.equal(cond(r, 'tenant-a/board', 'Conflict')?.reason, 'ClaimedByAnotherNamespace');
  for (const c of r.statuses.get('tenant-a/board')!.conditions)
    assert.doesNotMatch(c.message, /tenant-b|\bother\b/, c.type);
});

test('a NotPermitted claimant never takes or keeps an IP', () => {
  const outside = bc('tenant-c', 'x', '10.10.0.5', 'nbd://10.20.0.7/x', '2026-01-01T00:00:00Z');
  const a = bc('tenant-a', 'board', '10.10.0.5', 'nbd://10.20.0.7/a', '2026-02-01T00:00:00Z');
  const r = render([outside, a], DEFAULT_RENDER_OPTIONS, undefined, tenancy());
  assert.equal(cond(r, 'tenant-c/x', 'Accepted')?.reason, 'NotPermitted');
  assert.deepEqual(r.claims.get('10.10.0.5'), { namespace: 'tenant-a' });
});
