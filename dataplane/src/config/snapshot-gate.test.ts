import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { pino } from 'pino';
import { createDataplaneMetrics } from '../metrics.ts';
import { SNAPSHOT_MARKER, parseSnapshotMarker } from '../../../common/src/snapshot-marker.ts';
import { SnapshotGate } from './snapshot-gate.ts';

const GOOD = {
  complete: true,
  source: 'api',
  resourceVersions: { 'rtftp-configs-0': '812', 'rtftp-configs-1': '815' },
  syncedAt: '2025-01-02T03:04:05.000Z',
};

const BAD: [string, unknown, RegExp][] = [
  ['not JSON', '{"complete": tru', /not JSON/],
  ['an array', [], /not a JSON object/],
  ['complete missing', { ...GOOD, complete: undefined }, /complete/],
  ['complete as a string', { ...GOOD, complete: 'true' }, /complete/],
  ['an unknown source', { ...GOOD, source: 'etcd' }, /source/],
  ['a numeric resourceVersion', { ...GOOD, resourceVersions: { a: 812 } }, /resourceVersions/],
  ['no syncedAt', { ...GOOD, syncedAt: undefined }, /syncedAt/],
  ['a syncedAt that is no time', { ...GOOD, syncedAt: 'yesterday' }, /syncedAt/],
];

test('a marker as the contract writes it parses', () => {
  assert.deepEqual(parseSnapshotMarker(JSON.stringify(GOOD)), { ok: true, marker: GOOD });
});

for (const [name, value, reason] of BAD) {
  test(`a marker with ${name} is refused, naming the field`, () => {
    const r = parseSnapshotMarker(typeof value === 'string' ? value : JSON.stringify(value));
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.reason, reason);
  });
}

describe('SnapshotGate', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rtftp-gate-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** Writes the marker as the sidecar does: a temp file renamed into place. */
  const writeMarker = async (value: unknown) => {
    const tmp = join(dir, `.marker-${process.pid}.tmp`);
    await writeFile(tmp, typeof value === 'string' ? value : JSON.stringify(value));
    await rename(tmp, join(dir, SNAPSHOT_MARKER));
  };
  const client = { address: '10.0.0.5', port: 2070, family: 'IPv4' as const, size: 20 };
  const until = async (cond: () => boolean, ms = 5000) => {
    const end = Date.now() + ms;
    while (!cond()) {
      assert.ok(Date.now() < end, 'condition not met in time');
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  it('drops requests until a complete marker, runs the pre-open work first, then keeps serving', async () => {
    const metrics = createDataplaneMetrics(undefined, false);
    const gate = new SnapshotGate({ dir, logger: pino({ level: 'silent' }), metrics, pollMs: 50 });
    let loaded = false;
    let admittedDuringLoad = true;
    gate.runBeforeOpen(async () => {
      // Requests arriving while the configs load are still held back.
      admittedDuringLoad = gate.admit(client, 'pxelinux.0');
      await new Promise((r) => setTimeout(r, 100));
      loaded = true;
    });
    try {
      await gate.start();
      assert.equal(gate.admit(client, 'pxelinux.0'), false);
      assert.equal(gate.status().marker, 'missing');
      await writeMarker({ ...GOOD, complete: false });
      await until(() => gate.status().marker === 'incomplete');
      assert.equal(gate.admit(client, 'pxelinux.0'), false);
      await writeMarker(GOOD);
      await until(() => gate.open);
      assert.equal(loaded, true, 'the gate opened before the configs were loaded');
      assert.equal(admittedDuringLoad, false);
      assert.equal(gate.admit(client, 'pxelinux.0'), true);
      const text = await metrics.registry.metrics();
      assert.match(text, /^rtftp_requests_dropped_total\{reason="snapshot-pending"\} 3$/m);
      assert.match(text, /^rtftp_config_snapshot_timestamp_seconds 1735787045$/m);
      assert.match(text, /^rtftp_config_snapshot_info\{source="api"\} 1$/m);
      assert.match(
        text,
        /^rtftp_config_snapshot_resource_version_info\{configmap="rtftp-configs-1",resource_version="815"\} 1$/m,
      );

      // Unreadable, then incomplete, then gone: the last complete snapshot stays served.
      for (const broken of ['garbage', { ...GOOD, complete: false }]) {
        await writeMarker(broken);
        await until(() => gate.status().marker !== 'ok');
        assert.equal(gate.admit(client, 'pxelinux.0'), true);
        assert.deepEqual(gate.status().resourceVersions, GOOD.resourceVersions);
      }
      await rm(join(dir, SNAPSHOT_MARKER));
      await until(() => gate.status().marker === 'missing');
      assert.equal(gate.open, true);

      const next = { ...GOOD, source: 'node', resourceVersions: { 'rtftp-configs-0': '900' } };
      await writeMarker(next);
      await until(() => gate.status().source === 'node');
      const status = gate.status(Date.parse(GOOD.syncedAt) + 42_000);
      assert.deepEqual(
        [status.state, status.marker, status.resourceVersions, status.ageSeconds],
        ['serving', 'ok', next.resourceVersions, 42],
      );
      const after = await metrics.registry.metrics();
      assert.match(after, /^rtftp_config_snapshot_info\{source="node"\} 1$/m);
      assert.doesNotMatch(after, /source="api"/, 'the old snapshot is no longer reported');
      assert.doesNotMatch(after, /rtftp-configs-1/);
    } finally {
      gate.stop();
    }
  });
});
