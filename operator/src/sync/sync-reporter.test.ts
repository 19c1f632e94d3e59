import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { readSyncReport } from '../controller/sync-report.ts';
import { createOperatorMetrics } from '../metrics.ts';
import { SyncReporter, type ReportWrite } from './sync-reporter.ts';

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Polls: timers on a loaded machine run late, so no fixed sleep decides a result. */
async function until(what: string, fn: () => boolean): Promise<void> {
  for (const end = Date.now() + 10_000; !fn(); await settle(10))
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

test('reports at once on a change, renews on its interval, retries after a failure', async () => {
  const written: Parameters<ReportWrite>[0][] = [];
  let failNext = 0;
  const metrics = createOperatorMetrics(new Registry(), false, 'sync');
  const reporter = new SyncReporter({
    write: async (lease) => {
      if (failNext > 0) {
        failNext--;
        throw new Error('connection refused');
      }
      written.push(lease);
    },
    nodeName: 'n1',
    identity: 'pod-1',
    intervalMs: 100,
    leaseDurationSeconds: 1,
    log: pino({ level: 'silent' }),
    metrics,
  });
  try {
    reporter.start();
    await until('the first report', () => written.length === 1);
    let r = readSyncReport(written[0]!);
    assert.ok(r.ok && r.report.source === 'none' && r.report.applied.size === 0);
    reporter.update({ 'rtftp-configs-00': '7' }, 'node');
    await until('the update', () => written.length >= 2);
    r = readSyncReport(written.at(-1)!);
    assert.ok(
      r.ok && r.report.source === 'node' && r.report.applied.get('rtftp-configs-00') === '7',
    );
    await until('two renewals', () => written.length >= 4);
    failNext = 2;
    const before = written.length;
    await until('a write after two failures', () => failNext === 0 && written.length > before);
    const text = await metrics.registry.metrics();
    assert.match(text, /rtftp_operator_sync_report_writes_total\{result="error"\} 2/);
    const last = readSyncReport(written.at(-1)!);
    assert.ok(last.ok && last.report.applied.get('rtftp-configs-00') === '7');
  } finally {
    await reporter.stop();
  }
  const after = written.length;
  await settle(250);
  assert.equal(written.length, after, 'nothing after stop');
});
