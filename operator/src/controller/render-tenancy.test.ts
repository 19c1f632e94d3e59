import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BootClient } from '../../../common/src/bootclient.ts';
import { compileBootNetwork, type BootNetwork } from '../../../common/src/bootnetwork.ts';
import { parseNbdConfig } from '../../../common/src/nbd-config.ts';
import { BUILTIN_RESERVED } from '../../../common/src/nbd-target-policy.ts';
import { claimKeyOf, serialClaimId, type Claim } from './claims.ts';
import { DEFAULT_RENDER_OPTIONS, render, type TenancyInput } from './render.ts';

const OPERATOR_NS = 'rtftp';
const T0 = Date.parse('2026-03-01T00:00:00Z');

function bc(
  namespace: string,
  name: string,
  ip: string,
  url: string,
  created: string,
  serial?: string,
): BootClient {
  return {
    metadata: { namespace, name, generation: 1, creationTimestamp: created },
    spec: {
      ip,
      nbd: { url },
      mounts: [{ partition: 1, mountpoint: '/' }],
      tftpRoot: '/boot',
      ...(serial === undefined ? {} : { serial }),
    },
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

// Serials (spec.serial): claimed like IPs, in the same ledger.
const PI = serialClaimId('1a2b3c4d');
/** A tenant's Pi at `ip`, its disk named after it, declaring `serial`. */
const pi = (ns: string, name: string, ip: string, created: string, serial?: string) =>
  bc(ns, name, ip, `nbd://10.20.0.7/${name}`, `${created}T00:00:00Z`, serial);
const renderWith = (clients: BootClient[], claims: Record<string, Claim> = {}, now = T0) =>
  render(clients, DEFAULT_RENDER_OPTIONS, undefined, tenancy(claims, now));

test('a serial is rendered lower-case into the .nbd and claimed beside the IP', () => {
  const a = pi('tenant-a', 'pi', '10.10.0.5', '2026-01-01', '1A2B3C4D');
  const r = renderWith([a]);
  const parsed = parseNbdConfig(r.configs.get('10.10.0.5.nbd')!);
  assert.ok(parsed.ok);
  assert.equal(parsed.config.serial, '1a2b3c4d');
  assert.deepEqual(r.claims.get(PI), { namespace: 'tenant-a' });
  assert.ok([...r.shards.values()].some((d) => d.has('serial-1a2b3c4d.claim')));
});

test('two BootClients of one namespace with one serial (any case): the older keeps it, the newer gets Conflict and renders nothing', () => {
  const older = pi('tenant-a', 'pi-1', '10.10.0.5', '2026-01-01', '1a2b3c4d');
  const newer = pi('tenant-a', 'pi-2', '10.10.0.6', '2026-02-01', '1A2B3C4D');
  const r = renderWith([newer, older]);
  assert.deepEqual([...r.configs.keys()], ['10.10.0.5.nbd']);
  const conflict = cond(r, 'tenant-a/pi-2', 'Conflict')!;
  assert.equal(conflict.reason, 'SerialInUse');
  assert.match(conflict.message, /serial 1a2b3c4d is held by BootClient tenant-a\/pi-1/);
  assert.equal(cond(r, 'tenant-a/pi-2', 'Rendered')?.reason, 'Conflict');
  // It still holds its own IP's claim: the serial is what it lost.
  assert.deepEqual(r.claims.get('10.10.0.6'), { namespace: 'tenant-a' });
  // Without tenancy (one trusted namespace) the same rule holds.
  const plain = render([newer, older], DEFAULT_RENDER_OPTIONS);
  assert.deepEqual([...plain.configs.keys()], ['10.10.0.5.nbd']);
});

test("tenant-b never takes tenant-a's serial: not held, not vacant, not when older; and never learns who holds it", () => {
  const b = pi('tenant-b', 'squat', '10.10.0.9', '2025-01-01', '1A2B3C4D');
  const a = pi('tenant-a', 'pi', '10.10.0.5', '2026-01-01', '1a2b3c4d');
  const held = renderWith([a, b], { [PI]: { namespace: 'tenant-a' } });
  assert.deepEqual([...held.configs.keys()], ['10.10.0.5.nbd']);
  assert.equal(cond(held, 'tenant-b/squat', 'Conflict')?.reason, 'ClaimedByAnotherNamespace');
  for (const c of held.statuses.get('tenant-b/squat')!.conditions)
    assert.doesNotMatch(c.message, /tenant-a|\bpi\b/, c.type);
  // A is deleted: the claim is kept, vacant; B stays out.
  const vacant = renderWith([b], Object.fromEntries(held.claims));
  assert.equal(vacant.configs.size, 0);
  assert.ok(vacant.claims.get(PI)?.vacantSince);
  assert.equal(cond(vacant, 'tenant-b/squat', 'Conflict')?.reason, 'ClaimedByAnotherNamespace');
  // A is re-created (younger than B) within the retention: A gets its serial back.
  const a2 = { ...a, metadata: { ...a.metadata, creationTimestamp: '2026-02-28T00:00:00Z' } };
  const back = renderWith([b, a2], Object.fromEntries(vacant.claims), T0 + 3600_000);
  assert.deepEqual([...back.configs.keys()], ['10.10.0.5.nbd']);
  assert.deepEqual(back.claims.get(PI), { namespace: 'tenant-a' });
  // After the retention with A gone, B may take it (as for an IP).
  const later = renderWith([b], Object.fromEntries(vacant.claims), T0 + 8 * 24 * 3600_000);
  assert.deepEqual(later.expiredClaims.sort(), ['10.10.0.5', PI]);
  assert.deepEqual([...later.configs.keys()], ['10.10.0.9.nbd']);
});

test('a serial is claimed only by a BootClient that holds its IP', () => {
  // pi-1 loses its IP to another namespace: it does not keep the serial from pi-2.
  const other = pi('tenant-b', 'ip-holder', '10.10.0.5', '2025-01-01');
  const pi1 = pi('tenant-a', 'pi-1', '10.10.0.5', '2026-01-01', '1a2b3c4d');
  const pi2 = pi('tenant-a', 'pi-2', '10.10.0.6', '2026-02-01', '1a2b3c4d');
  const r = renderWith([other, pi1, pi2]);
  assert.equal(cond(r, 'tenant-a/pi-1', 'Conflict')?.reason, 'ClaimedByAnotherNamespace');
  assert.match(cond(r, 'tenant-a/pi-1', 'Conflict')!.message, /^IP 10\.10\.0\.5/);
  assert.ok(r.configs.has('10.10.0.6.nbd'));
  assert.deepEqual(r.claims.get(PI), { namespace: 'tenant-a' });
});
