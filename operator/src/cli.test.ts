import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCli, UsageError } from './cli.ts';

test('the controller takes its namespace from POD_NAMESPACE and watches it by default', () => {
  const a = parseCli([], { POD_NAMESPACE: 'boot', POD_NAME: 'op-0' });
  assert.ok(a !== 'help' && a.mode === 'controller');
  assert.equal(a.namespace, 'boot');
  assert.equal(a.watchNamespace, 'boot');
  assert.equal(a.identity, 'op-0');
  const all = parseCli(['--all-namespaces'], { POD_NAMESPACE: 'boot' });
  assert.ok(all !== 'help' && all.mode === 'controller' && all.watchNamespace === '');
});

test('sync needs --dir and selects the rendered ConfigMaps by default', () => {
  const a = parseCli(['sync', '--dir', '/cfg', '--namespace', 'x'], {});
  assert.ok(a !== 'help' && a.mode === 'sync');
  assert.equal(a.selector, 'rtftp.io/rendered-configs=true');
  assert.throws(() => parseCli(['sync', '--namespace', 'x'], {}), /--dir/);
});

test('bad arguments are one clear UsageError', () => {
  for (const argv of [
    ['--shards', '0'],
    ['--bogus'],
    ['serve'],
    ['--log-level', 'loud'],
    ['--lease-duration', '5', '--renew-deadline', '6'],
  ]) {
    assert.throws(
      () => parseCli(argv, { POD_NAMESPACE: 'n' }),
      (err: unknown) => err instanceof UsageError && !err.message.includes('\n'),
      argv.join(' '),
    );
  }
  assert.throws(() => parseCli([], {}), /POD_NAMESPACE/);
});

test('flags can come from the environment', () => {
  const a = parseCli([], { POD_NAMESPACE: 'n', RTFTP_OPERATOR_SHARDS: '4' });
  assert.ok(a !== 'help' && a.mode === 'controller' && a.shards === 4);
});

test('sync: the node snapshot, the node name and the report Lease timing', () => {
  const a = parseCli(
    [
      'sync',
      '--dir',
      '/run/cfg',
      '--snapshot-dir',
      '/var/lib/rtftp/configs',
      '--report-interval',
      '5',
    ],
    { POD_NAMESPACE: 'n', NODE_NAME: 'worker-3', POD_NAME: 'dp-x2x9k' },
  );
  assert.ok(a !== 'help' && a.mode === 'sync');
  assert.deepEqual(
    [a.snapshotDir, a.nodeName, a.identity, a.reportIntervalMs, a.reportLeaseDurationSeconds],
    ['/var/lib/rtftp/configs', 'worker-3', 'dp-x2x9k', 5000, 40],
  );
  const none = parseCli(['sync', '--dir', '/run/cfg'], { POD_NAMESPACE: 'n', NODE_NAME: '' });
  assert.ok(none !== 'help' && none.mode === 'sync');
  assert.deepEqual([none.snapshotDir, none.nodeName], ['', '']);
  for (const argv of [
    ['--snapshot-dir', '/run/cfg/'],
    ['--report-interval', '30', '--report-lease-duration', '40'],
    ['--report-lease-duration', '0'],
  ])
    assert.throws(
      () => parseCli(['sync', '--dir', '/run/cfg', ...argv], { POD_NAMESPACE: 'n' }),
      UsageError,
      argv.join(' '),
    );
});
