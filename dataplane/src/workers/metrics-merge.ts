/**
 * /metrics in worker mode: the main thread's registry merged with every worker's, so a
 * dashboard sees one dataplane whatever the number of threads. Counters, histograms and
 * the gauges of what the workers serve (transfers active, disks connected, a client's last
 * transfer) are summed across threads. Gauges that describe the whole process or the
 * main thread's parts are the main thread's value alone: a worker's copy of them (never
 * set, or set to its own defaults) is left out, never added.
 */
import { AggregatorRegistry } from 'prom-client';
import type { Registry } from 'prom-client';
import type { MetricsJson } from './messages.ts';

/** Owned by the main thread: readiness, listening, configs, admission, health, build. */
export const MAIN_THREAD_METRICS: ReadonlySet<string> = new Set([
  'rtftp_ready',
  'rtftp_listen_addresses',
  'rtftp_listen_receive_buffer_bytes',
  'rtftp_listen_drops_total',
  'rtftp_build_info',
  'rtftp_kvm_available',
  'rtftp_nbd_configs',
  'rtftp_nbd_config_errors_total',
  'rtftp_requests_dropped_total',
  'rtftp_config_snapshot_timestamp_seconds',
  'rtftp_config_snapshot_info',
  'rtftp_config_snapshot_resource_version_info',
  'rtftp_transfers_pending',
  'rtftp_transfer_memory_bytes',
  'rtftp_transfer_memory_budget_bytes',
  'rtftp_health_stall_seconds',
  'rtftp_workers',
  'rtftp_worker_restarts_total',
]);

export function mergeWorkerMetrics(main: MetricsJson, workers: MetricsJson[]): Registry {
  const served = workers.map((w) => w.filter((m) => !MAIN_THREAD_METRICS.has(m.name)));
  return AggregatorRegistry.aggregate([main, ...served]);
}
