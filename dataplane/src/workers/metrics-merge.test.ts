import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { createDataplaneMetrics } from '../metrics.ts';
import { metricValue } from '../../test/helpers/tftp-servers.ts';
import { mergeWorkerMetrics } from './metrics-merge.ts';

test('/metrics across threads: what the workers serve is summed, the process and the main thread counted once', async () => {
  const main = createDataplaneMetrics(new Registry(), false);
  main.transferMemoryBudget.set(1000);
  main.workers.set(2);
  main.malformed.inc(3);
  const workers = [0, 1].map(() => createDataplaneMetrics(new Registry(), false));
  workers.forEach((w, i) => {
    w.transfers.inc({ outcome: 'completed', source: 'nbd', protocol: 'tftp' }, 10 + i);
    w.activeTransfers.set({ protocol: 'tftp' }, 5);
    w.transferDuration.observe({ protocol: 'tftp' }, 0.3);
    w.nbdSessionsActive.set({ backend: 'native' }, 100 + i);
    w.clientLastTransfer.set({ client: `10.0.0.${i}` }, 1700000000 + i);
    // A worker's own copies of main-thread gauges are never added in.
    w.transferMemoryBudget.set(1000);
  });
  const merged = await mergeWorkerMetrics(
    await main.registry.getMetricsAsJSON(),
    await Promise.all(workers.map((w) => w.registry.getMetricsAsJSON())),
  ).metrics();
  const v = (s: string) => metricValue(merged, s);
  assert.equal(v('rtftp_transfers_total{outcome="completed",source="nbd"}'), 21);
  assert.equal(v('rtftp_transfers_active{protocol="tftp"}'), 10);
  assert.equal(v('rtftp_transfer_duration_seconds_count'), 2);
  assert.equal(v('rtftp_nbd_sessions_active{backend="native"}'), 201);
  assert.equal(v('rtftp_client_last_transfer_timestamp_seconds{client="10.0.0.1"}'), 1700000001);
  assert.equal(v('rtftp_malformed_packets_total'), 3);
  assert.equal(v('rtftp_transfer_memory_budget_bytes'), 1000);
  assert.equal(v('rtftp_workers'), 2);
  assert.match(merged, /rtftp_build_info\{[^}]*\} 1\n/);
  assert.match(merged, /rtftp_kvm_available -1\n/);
});
