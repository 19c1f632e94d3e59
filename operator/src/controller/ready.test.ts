import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readyConditions } from './ready.ts';
import { ShardHistory } from './shard-history.ts';
import type { SyncReport } from './sync-report.ts';

const report = (node: string, applied: Record<string, string>): SyncReport => ({
  node,
  holder: `pod-${node}`,
  applied: new Map(Object.entries(applied)),
  source: 'api',
  leaseDurationSeconds: 40,
  renewTimeMs: 0,
});

test('Ready follows the nodes that applied a shard version holding the current config', () => {
  const history = new ShardHistory();
  history.observe('rtftp-configs-00', '1', { '10.0.0.1.nbd': 'old' });
  history.observe('rtftp-configs-00', '2', { '10.0.0.1.nbd': 'new' });
  history.observe('rtftp-configs-00', '3', { '10.0.0.1.nbd': 'new', '10.0.0.2.nbd': 'x' });
  const placements = new Map([
    ['ns/a', { shard: 'rtftp-configs-00', key: '10.0.0.1.nbd', text: 'new' }],
  ]);
  const keys = ['ns/a', 'ns/invalid'];
  const ready = (live: SyncReport[]) =>
    Object.fromEntries(
      [...readyConditions(keys, placements, live, history)].map(([k, c]) => [
        k,
        `${c.status} ${c.reason} ${c.message}`,
      ]),
    );
  assert.deepEqual(ready([]), {
    'ns/a': 'False NoDataplane served by 0/0 nodes (no live dataplane node reports)',
    'ns/invalid': 'False NotRendered served by 0/0 nodes (not rendered)',
  });
  const lagging = [
    report('n1', { 'rtftp-configs-00': '3' }),
    report('n2', { 'rtftp-configs-00': '1' }),
  ];
  assert.equal(ready(lagging)['ns/a'], 'False Syncing served by 1/2 nodes');
  assert.equal(
    ready(lagging)['ns/invalid'],
    'False NotRendered served by 0/2 nodes (not rendered)',
  );
  const caughtUp = [
    report('n1', { 'rtftp-configs-00': '3' }),
    report('n2', { 'rtftp-configs-00': '2' }),
  ];
  assert.equal(ready(caughtUp)['ns/a'], 'True Served served by 2/2 nodes');
  // A node that applied nothing of that shard (a first start without the API) serves nothing.
  assert.equal(ready([...caughtUp, report('n3', {})])['ns/a'], 'False Syncing served by 2/3 nodes');
});
