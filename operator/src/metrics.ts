/**
 * Every metric the operator and its sync sidecar expose, in one place, so the chart's
 * dashboards and alerts have one list to hold against without a running cluster.
 * Names are a contract: renaming one breaks users' dashboards.
 *
 * Process metrics (`process_*`, `nodejs_*`) are prom-client's defaults, unprefixed like
 * every other exporter's, so generic process and Node.js dashboards and alerts find them;
 * the `job` (and `pod`, `container`) labels tell the operator from the dataplane.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { buildInfoGauge } from '../../common/src/build-info.ts';

/**
 * @param component 'operator' (the controller) or 'sync' (the sidecar in each dataplane pod,
 * scraped under the dataplane's job). Each registers only its own metrics (both: the watch
 * restarts), so the controller's gauges (leader, rendered configs) never show as zeros on
 * dataplane pods, nor the sidecar's on the operator. The returned object has every metric
 * either way; the other component's are simply not exposed.
 */
export function createOperatorMetrics(
  registry: Registry = new Registry(),
  withDefaults = true,
  component: 'operator' | 'sync' = 'operator',
) {
  if (withDefaults) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const controllerOnly = component === 'operator' ? registers : [];
  const syncOnly = component === 'sync' ? registers : [];
  return {
    registry,
    buildInfo: buildInfoGauge(registers, component),
    reconciles: new Counter({
      name: 'rtftp_operator_reconciles_total',
      help: 'Reconciles, by controller (render: all configs; ready: the Ready condition of all BootClients; status: one BootClient) and result (success, error, requeue)',
      labelNames: ['controller', 'result'] as const,
      registers: controllerOnly,
    }),
    reconcileDuration: new Histogram({
      name: 'rtftp_operator_reconcile_duration_seconds',
      help: 'Time one reconcile took, by controller',
      labelNames: ['controller'] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
      registers: controllerOnly,
    }),
    bootClients: new Gauge({
      name: 'rtftp_operator_bootclients',
      help: 'BootClients by condition type and status, as last rendered (Accepted, Rendered, Conflict, Ready)',
      labelNames: ['condition', 'status'] as const,
      registers: controllerOnly,
    }),
    renderedConfigs: new Gauge({
      name: 'rtftp_operator_rendered_configs',
      help: 'Configs (<ip>.nbd) in the rendered ConfigMaps',
      registers: controllerOnly,
    }),
    watchRestarts: new Counter({
      name: 'rtftp_operator_watch_restarts_total',
      help: 'Watches restarted, by resource and reason (closed, expired = 410 Gone, error, stalled = watchdog)',
      labelNames: ['resource', 'reason'] as const,
      registers,
    }),
    leader: new Gauge({
      name: 'rtftp_operator_leader',
      help: '1 while this replica holds the leader Lease and writes, else 0',
      registers: controllerOnly,
    }),
    dataplaneReports: new Gauge({
      name: 'rtftp_operator_dataplane_reports',
      help: "Dataplane nodes' sync reports (per-node Leases), by state: live (renewed in time, counted for Ready) or stale (taken as a dead node)",
      labelNames: ['state'] as const,
      registers: controllerOnly,
    }),
    apiWrites: new Counter({
      name: 'rtftp_operator_api_writes_total',
      help: 'Writes to the API server, by kind (configmap, status, event) and result (success, conflict, error)',
      labelNames: ['kind', 'result'] as const,
      registers: controllerOnly,
    }),
    claims: new Gauge({
      name: 'rtftp_operator_claims',
      help: 'IP and serial claims in the claim ledger, by state (held: a BootClient of the namespace renders it; vacant: kept for the namespace until released)',
      labelNames: ['state'] as const,
      registers: controllerOnly,
    }),
    syncFiles: new Gauge({
      name: 'rtftp_operator_sync_files',
      help: 'sync mode: config files present in the target directory',
      registers: syncOnly,
    }),
    syncWrites: new Counter({
      name: 'rtftp_operator_sync_file_changes_total',
      help: 'sync mode: config files written or deleted, by operation (write, delete, skip = a file it did not write)',
      labelNames: ['operation'] as const,
      registers: syncOnly,
    }),
    syncErrors: new Counter({
      name: 'rtftp_operator_sync_errors_total',
      help: 'sync mode: failed directory syncs (retried)',
      registers: syncOnly,
    }),
    syncNodeSnapshotWrites: new Counter({
      name: 'rtftp_operator_sync_node_snapshot_writes_total',
      help: 'sync mode: writes of the config snapshot kept on the node (--snapshot-dir), by result (success, error)',
      labelNames: ['result'] as const,
      registers: syncOnly,
    }),
    syncReportWrites: new Counter({
      name: 'rtftp_operator_sync_report_writes_total',
      help: "sync mode: writes of this node's report Lease (the shard versions it applied), by result (success, error)",
      labelNames: ['result'] as const,
      registers: syncOnly,
    }),
    syncIgnored: new Counter({
      name: 'rtftp_operator_sync_ignored_configmaps_total',
      help: 'sync mode: labelled ConfigMaps not served because the operator did not write them, by reason (name: not one of its shard names; owner: without its managed-by label); once per object version',
      labelNames: ['reason'] as const,
      registers: syncOnly,
    }),
  };
}

export type OperatorMetrics = ReturnType<typeof createOperatorMetrics>;
