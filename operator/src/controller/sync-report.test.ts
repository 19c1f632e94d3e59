import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  APPLIED_ANNOTATION,
  microTime,
  readSyncReport,
  syncReportLease,
  syncReportLeaseName,
  type LeaseObject,
} from './sync-report.ts';

const lease = (over: Partial<Parameters<typeof syncReportLease>[0]> = {}): LeaseObject =>
  syncReportLease({
    nodeName: 'rack1-pi-07',
    holderIdentity: 'boot-rtftp-dataplane-x2x9k',
    leaseDurationSeconds: 40,
    applied: { 'rtftp-configs-01': '12', 'rtftp-configs-00': '11' },
    source: 'api',
    renewTime: microTime(Date.UTC(2026, 0, 1)),
    ...over,
  });

test('a report reads back as written', () => {
  const r = readSyncReport(lease());
  assert.ok(r.ok);
  assert.equal(r.report.node, 'rack1-pi-07');
  assert.equal(r.report.holder, 'boot-rtftp-dataplane-x2x9k');
  assert.deepEqual(
    [...r.report.applied],
    [
      ['rtftp-configs-00', '11'],
      ['rtftp-configs-01', '12'],
    ],
  );
  assert.equal(r.report.renewTimeMs, Date.UTC(2026, 0, 1));
  assert.equal(microTime(Date.UTC(2026, 0, 1)), '2026-01-01T00:00:00.000000Z');
});

test('the Lease name is the node name under a prefix, shortened with a hash when too long', () => {
  assert.equal(syncReportLeaseName('worker-1.example.org'), 'rtftp-sync-worker-1.example.org');
  const long = 'n'.repeat(240) + '.example.org';
  const name = syncReportLeaseName(long);
  assert.ok(name.length <= 253);
  assert.match(name, /^rtftp-sync-n+-[0-9a-f]{10}$/);
  assert.notEqual(name, syncReportLeaseName('n'.repeat(241) + '.example.org'));
});

test('a Lease that is not a valid report says why', () => {
  const bad = (mutate: (l: LeaseObject) => void) => {
    const l = structuredClone(lease());
    mutate(l);
    const r = readSyncReport(l);
    return r.ok ? 'ok' : r.reason;
  };
  assert.match(
    bad((l) => delete l.metadata!.annotations![APPLIED_ANNOTATION]),
    /no rtftp.io\/applied/,
  );
  assert.match(
    bad((l) => (l.metadata!.annotations![APPLIED_ANNOTATION] = '{"x":1}')),
    /object of strings/,
  );
  assert.match(
    bad((l) => (l.metadata!.annotations![APPLIED_ANNOTATION] = 'nope')),
    /not JSON/,
  );
  assert.match(
    bad((l) => (l.metadata!.annotations!['rtftp.io/node'] = '')),
    /rtftp.io\/node/,
  );
  assert.match(
    bad((l) => (l.spec!.leaseDurationSeconds = 0)),
    /leaseDurationSeconds/,
  );
  assert.match(
    bad(
      (l) =>
        (l.metadata!.annotations![APPLIED_ANNOTATION] = JSON.stringify({ a: 'x'.repeat(70_000) })),
    ),
    /larger than/,
  );
});
