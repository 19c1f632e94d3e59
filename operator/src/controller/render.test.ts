import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { BootClient } from '../../../common/src/bootclient.ts';
import { parseNbdConfig } from '../../../common/src/nbd-config.ts';
import { render, DEFAULT_RENDER_OPTIONS } from './render.ts';

function bc(
  name: string,
  ip: string,
  created: string,
  extra: Partial<BootClient['metadata']> = {},
  spec: Record<string, unknown> = {},
): BootClient {
  return {
    metadata: { name, namespace: 'ns', generation: 1, creationTimestamp: created, ...extra },
    spec: {
      ip,
      nbd: { url: `nbd://10.9.9.9/${name}` },
      mounts: [{ partition: 2, mountpoint: '/' }],
      tftpRoot: '/boot',
      ...spec,
    },
  };
}

const condition = (r: ReturnType<typeof render>, key: string, type: string) =>
  r.statuses.get(key)?.conditions.find((c) => c.type === type);

test('renders each valid BootClient as the <ip>.nbd text the dataplane parses', () => {
  const r = render(
    [bc('a', '10.0.0.5', '2026-01-01T00:00:00Z', {}, { idleTimeout: 30, prefetch: false })],
    DEFAULT_RENDER_OPTIONS,
  );
  const text = r.configs.get('10.0.0.5.nbd');
  assert.equal(
    text,
    '{"url":"nbd://10.9.9.9/a","mounts":[{"partition":2,"mountpoint":"/"}],"tftp_root":"/boot","prefetch":false,"idle_timeout":30}\n',
  );
  const parsed = parseNbdConfig(text!);
  assert.ok(parsed.ok && parsed.config.idleTimeout === 30 && parsed.config.prefetch === false);
  assert.equal(condition(r, 'ns/a', 'Rendered')?.status, 'True');
  assert.equal(condition(r, 'ns/a', 'Accepted')?.status, 'True');
});

test('the older BootClient keeps a shared IP; the newer gets Conflict naming the holder', () => {
  const older = bc('zz-old', '10.0.0.7', '2026-01-01T00:00:00Z');
  const newer = bc('aa-new', '10.0.0.7', '2026-01-02T00:00:00Z');
  const r = render([newer, older], DEFAULT_RENDER_OPTIONS);
  assert.match(r.configs.get('10.0.0.7.nbd')!, /zz-old/);
  assert.equal(condition(r, 'ns/aa-new', 'Conflict')?.status, 'True');
  assert.match(condition(r, 'ns/aa-new', 'Conflict')!.message, /ns\/zz-old/);
  assert.equal(condition(r, 'ns/aa-new', 'Rendered')?.status, 'False');
  assert.equal(condition(r, 'ns/zz-old', 'Conflict')?.status, 'False');
});

test('same creation time: the name decides, so the result never depends on order', () => {
  const a = bc('a', '10.0.0.8', '2026-01-01T00:00:00Z');
  const b = bc('b', '10.0.0.8', '2026-01-01T00:00:00Z');
  assert.match(render([b, a], DEFAULT_RENDER_OPTIONS).configs.get('10.0.0.8.nbd')!, /\/a"/);
  assert.match(render([a, b], DEFAULT_RENDER_OPTIONS).configs.get('10.0.0.8.nbd')!, /\/a"/);
});

test('the newer one takes over when the holder is deleted or being deleted', () => {
  const older = bc('old', '10.0.0.9', '2026-01-01T00:00:00Z', {
    deletionTimestamp: '2026-02-01T00:00:00Z',
  });
  const newer = bc('new', '10.0.0.9', '2026-01-02T00:00:00Z');
  const r = render([older, newer], DEFAULT_RENDER_OPTIONS);
  assert.match(r.configs.get('10.0.0.9.nbd')!, /\/new"/);
  assert.equal(r.statuses.has('ns/old'), false);
  assert.equal(condition(r, 'ns/new', 'Conflict')?.status, 'False');
});

test('an invalid spec is Accepted=False reason Invalid, naming the field, and renders nothing', () => {
  const r = render(
    [
      bc(
        'bad',
        '10.0.0.10',
        '2026-01-01T00:00:00Z',
        {},
        { mounts: [{ partition: 1, mountpoint: '/boot' }], nbd: { url: 'http://x' } },
      ),
    ],
    DEFAULT_RENDER_OPTIONS,
  );
  assert.equal(r.configs.size, 0);
  const accepted = condition(r, 'ns/bad', 'Accepted')!;
  assert.equal(accepted.status, 'False');
  assert.equal(accepted.reason, 'Invalid');
  assert.match(accepted.message, /spec\.nbd\.url/);
  assert.match(accepted.message, /spec\.mounts/);
});

test('a non-canonical IP is invalid: the dataplane would never look it up', () => {
  const r = render([bc('v6', 'FD00::0005', '2026-01-01T00:00:00Z')], DEFAULT_RENDER_OPTIONS);
  assert.match(condition(r, 'ns/v6', 'Accepted')!.message, /canonical form: fd00::5/);
});

test('IPv6 configs get ConfigMap-safe keys; every shard exists even when empty', () => {
  const r = render([bc('v6', 'fd00::5', '2026-01-01T00:00:00Z')], {
    shardCount: 4,
    maxShardBytes: 1 << 20,
  });
  assert.equal(r.shards.size, 4);
  const keys = [...r.shards.values()].flatMap((m) => [...m.keys()]);
  assert.deepEqual(keys, ['fd00__5.nbd']);
  assert.ok(r.configs.has('fd00::5.nbd'));
});

test('a full shard keeps its older configs and reports ShardFull on the rest', () => {
  const clients = Array.from({ length: 20 }, (_, i) =>
    bc(`c${i}`, `10.1.0.${i + 1}`, `2026-01-01T00:00:${String(i).padStart(2, '0')}Z`),
  );
  const r = render(clients, { shardCount: 1, maxShardBytes: 1000 });
  assert.ok(r.configs.size > 0 && r.configs.size < 20);
  assert.equal(condition(r, 'ns/c0', 'Rendered')?.status, 'True');
  assert.equal(condition(r, 'ns/c19', 'Rendered')?.reason, 'ShardFull');
});

test('render is deterministic: any order of the same BootClients gives the same result', () => {
  const clients = Array.from({ length: 12 }, (_, i) =>
    bc(`c${i}`, `10.2.0.${i % 5}`, `2026-01-0${(i % 3) + 1}T00:00:00Z`),
  );
  const expected = render(clients, DEFAULT_RENDER_OPTIONS);
  fc.assert(
    fc.property(fc.shuffledSubarray(clients, { minLength: clients.length }), (shuffled) => {
      assert.deepEqual(render(shuffled, DEFAULT_RENDER_OPTIONS), expected);
    }),
    { numRuns: 50 },
  );
});
