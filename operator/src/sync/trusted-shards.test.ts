import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RenderedConfigMap } from '../controller/controller.ts';
import { ShardTrust, desiredFiles, shardListing, untrustedReason } from './trusted-shards.ts';

const OWNER = { 'app.kubernetes.io/managed-by': 'rtftp-operator' };
const cm = (
  name: string,
  data: Record<string, string>,
  labels: Record<string, string> = OWNER,
  resourceVersion = '1',
): RenderedConfigMap => ({ metadata: { name, labels, resourceVersion }, data });

test("only the operator's shard names below --shards, with its label, are trusted", () => {
  assert.equal(untrustedReason(cm('rtftp-configs-00', {}), 16), null);
  assert.equal(untrustedReason(cm('rtftp-configs-15', {}), 16), null);
  assert.equal(untrustedReason(cm('rtftp-configs-16', {}), 16), 'name');
  assert.equal(untrustedReason(cm('rtftp-configs-3', {}), 16), 'name');
  assert.equal(untrustedReason(cm('evil', {}), 16), 'name');
  assert.equal(untrustedReason(cm('rtftp-configs-01', {}, {}), 16), 'owner');
});

test('a look-alike is ignored and reported once per version; claims are never served as files', () => {
  const ignored: string[] = [];
  const trust = new ShardTrust(4, (c, reason) => ignored.push(`${c.metadata?.name}:${reason}`));
  const own = cm('rtftp-configs-01', { '10.0.0.1.nbd': 'mine\n', '10.0.0.1.claim': '{}' });
  const evil = cm(
    'boot-overrides',
    { '10.0.0.2.nbd': 'evil\n' },
    { 'rtftp.io/rendered-configs': 'true' },
  );
  const beyond = cm('rtftp-configs-09', { '10.0.0.3.nbd': 'stale\n' });
  const files = desiredFiles(trust.trusted([own, evil, beyond]));
  assert.deepEqual([...files], [['10.0.0.1.nbd', 'mine\n']]);
  trust.trusted([own, evil, beyond]);
  assert.deepEqual(ignored, ['boot-overrides:name', 'rtftp-configs-09:name']);
  trust.trusted([own, { ...evil, metadata: { ...evil.metadata, resourceVersion: '2' } }]);
  assert.deepEqual(ignored.at(-1), 'boot-overrides:name', 'a new version is reported again');
  assert.equal(ignored.length, 3);
});

test("a listing is a snapshot only with every one of the operator's shards in it", () => {
  const shards = [
    cm('rtftp-configs-00', { '10.0.0.1.nbd': 'a\n' }, OWNER, '11'),
    cm('rtftp-configs-02', { '10.0.0.2.nbd': 'b\n' }, OWNER, '12'),
  ];
  // Before the operator's first render has written shard 01, serving the union would
  // give 10.0.0.3 (whose config lands there) default/'s files.
  assert.deepEqual(shardListing(shards, 3), { complete: false, missing: ['rtftp-configs-01'] });
  const all = [...shards, cm('rtftp-configs-01', {}, OWNER, '13')];
  assert.deepEqual(shardListing(all, 3), {
    complete: true,
    files: new Map([
      ['10.0.0.1.nbd', 'a\n'],
      ['10.0.0.2.nbd', 'b\n'],
    ]),
    resourceVersions: {
      'rtftp-configs-00': '11',
      'rtftp-configs-01': '13',
      'rtftp-configs-02': '12',
    },
  });
});
