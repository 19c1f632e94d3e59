/**
 * Every metric the operator and its sync sidecar expose, in one place, so the chart's
 * dashboards and alerts have one list to hold against without a running cluster.
 * Names are a contract: renaming one breaks users' dashboards.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createOperatorMetrics(registry: Registry = new Registry(), withDefaults = true) {
  if (withDefaults) collectDefaultMetrics({ register: registry, prefix: 'rtftp_operator_' });
  const registers = [registry];
  return {
    registry,
    reconciles: new Counter({
      name: 'rtftp_operator_reconciles_total',
      help: 'Reconciles, by controller (render: all configs; status: one BootClient) and result (success, error, requeue)',
      labelNames: ['controller', 'result'] as const,
      registers,
    }),
    reconcileDuration: new Histogram({
      name: 'rtftp_operator_reconcile_duration_seconds',
      help: 'Time one reconcile took, by controller',
      labelNames: ['controller'] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
      registers,
    }),
    bootClients: new Gauge({
      name: 'rtftp_operator_bootclients',
      help: 'BootClients by condition type and status, as last rendered (Accepted, Rendered, Conflict)',
      labelNames: ['condition', 'status'] as const,
      registers,
    }),
    renderedConfigs: new Gauge({
      name: 'rtftp_operator_rendered_configs',
      help: 'Configs (<ip>.nbd) in the rendered ConfigMaps',
      registers,
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
      registers,
    }),
    apiWrites: new Counter({
      name: 'rtftp_operator_api_writes_total',
      help: 'Writes to the API server, by kind (configmap, status, event) and result (success, conflict, error)',
      labelNames: ['kind', 'result'] as const,
      registers,
    }),
    claims: new Gauge({
      name: 'rtftp_operator_claims',
      help: 'IP claims in the claim ledger, by state (held: a BootClient of the namespace renders it; vacant: kept for the namespace until released)',
      labelNames: ['state'] as const,
      registers,
    }),
    syncFiles: new Gauge({
      name: 'rtftp_operator_sync_files',
      help: 'sync mode: config files present in the target directory',
      registers,
    }),
    syncWrites: new Counter({
      name: 'rtftp_operator_sync_file_changes_total',
      help: 'sync mode: config files written or deleted, by operation (write, delete, skip = a file it did not write)',
      labelNames: ['operation'] as const,
      registers,
    }),
    syncErrors: new Counter({
      name: 'rtftp_operator_sync_errors_total',
      help: 'sync mode: failed directory syncs (retried)',
      registers,
    }),
    syncIgnored: new Counter({
      name: 'rtftp_operator_sync_ignored_configmaps_total',
      help: 'sync mode: labelled ConfigMaps not served because the operator did not write them, by reason (name: not one of its shard names; owner: without its managed-by label); once per object version',
      labelNames: ['reason'] as const,
      registers,
    }),
  };
}

export type OperatorMetrics = ReturnType<typeof createOperatorMetrics>;
