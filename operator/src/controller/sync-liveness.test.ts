import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SyncLiveness } from './sync-liveness.ts';
import { microTime, syncReportLease, type LeaseObject } from './sync-report.ts';

function leaseOf(
  node: string,
  rv: string,
  applied: Record<string, string>,
  renewedAt: number,
): LeaseObject {
  const l: LeaseObject = syncReportLease({
    nodeName: node,
    holderIdentity: `pod-${node}`,
    leaseDurationSeconds: 10,
    applied,
    source: 'api',
    renewTime: microTime(renewedAt),
  });
  l.metadata!.namespace = 'rtftp';
  l.metadata!.resourceVersion = rv;
  return l;
}

test('a renewal keeps a node live without counting as a change; silence makes it stale by our clock', () => {
  let now = 1_000_000;
  const live = new SyncLiveness(() => now);
  assert.equal(live.upsert(leaseOf('a', '1', { s: '5' }, now)), true);
  now += 8000;
  assert.equal(live.upsert(leaseOf('a', '2', { s: '5' }, now)), false, 'a renewal only');
  assert.deepEqual(
    live.view().live.map((r) => r.node),
    ['a'],
  );
  assert.equal(live.view().nextExpiryAt, now + 10_000);
  now += 9999;
  assert.deepEqual(
    live.view().live.map((r) => r.node),
    ['a'],
  );
  now += 1;
  const v = live.view();
  assert.deepEqual([v.live.length, v.stale.map((r) => r.node)], [0, ['a']]);
  assert.equal(v.nextExpiryAt, undefined);
  // Its clock is not ours: a renewTime far in the future buys nothing, a change of the
  // object (a new resourceVersion) is what counts.
  assert.equal(live.upsert(leaseOf('a', '2', { s: '5' }, now + 3_600_000)), false);
  assert.equal(live.view().live.length, 0);
  assert.equal(live.upsert(leaseOf('a', '3', { s: '6' }, now)), true, 'new applied versions');
  assert.equal(live.view().live.length, 1);
});

test('at first sight a Lease renewed long ago is stale at once; a recent one is live', () => {
  const now = 5_000_000;
  const live = new SyncLiveness(() => now);
  live.upsert(leaseOf('dead', '1', {}, now - 21_000));
  live.upsert(leaseOf('skewed', '1', {}, now - 19_000));
  const v = live.view();
  assert.deepEqual(
    v.live.map((r) => r.node),
    ['skewed'],
  );
  assert.deepEqual(
    v.stale.map((r) => r.node),
    ['dead'],
  );
});

test('a node is counted once; an invalid Lease is reported once and dropped', () => {
  let now = 0;
  const invalid: string[] = [];
  const live = new SyncLiveness(
    () => now,
    (lease, reason) => invalid.push(`${lease}: ${reason}`),
  );
  live.upsert(leaseOf('a', '1', { s: '1' }, now));
  const renamed = leaseOf('a', '7', { s: '2' }, now);
  renamed.metadata!.name = 'old-name-for-a';
  now += 1;
  live.upsert(renamed);
  assert.deepEqual(
    live.view().live.map((r) => r.applied.get('s')),
    ['2'],
    'the newest report of a',
  );
  const broken = leaseOf('b', '1', {}, now);
  broken.metadata!.annotations!['rtftp.io/snapshot-source'] = 'elsewhere';
  live.upsert(broken);
  live.upsert({ ...broken, metadata: { ...broken.metadata, resourceVersion: '2' } });
  assert.equal(invalid.length, 1);
  assert.match(invalid[0]!, /rtftp\/rtftp-sync-b: .*snapshot-source/);
  assert.equal(live.remove(renamed), true);
  assert.deepEqual(
    live.view().live.map((r) => r.applied.get('s')),
    ['1'],
  );
});
