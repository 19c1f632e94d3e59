/**
 * Every metric the dataplane exposes, in one place, so dashboards and alerts
 * (charts/rtftp) have one list to hold against. Names are a contract: renaming one
 * breaks users' dashboards (a test in charts/ checks every queried name exists).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { buildInfoGauge } from '../../common/src/build-info.ts';

/** A gauge that reads -1 ("not known yet") until the code that knows sets it. */
function unknownUntilSet(gauge: Gauge): Gauge {
  gauge.set(-1);
  return gauge;
}

export function createDataplaneMetrics(registry: Registry = new Registry(), withDefaults = true) {
  if (withDefaults) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    transfers: new Counter({
      name: 'rtftp_transfers_total',
      help: 'Transfers ended, by outcome (completed, failed, aborted, timeout), source (client-dir, nbd, default) and protocol (tftp, http)',
      labelNames: ['outcome', 'source', 'protocol'] as const,
      registers,
    }),
    probes: new Counter({
      name: 'rtftp_probes_total',
      help: 'Size probes: RRQ with tsize answered by OACK and aborted by the client (Raspberry Pi, UEFI)',
      registers,
    }),
    bytesSent: new Counter({
      name: 'rtftp_sent_bytes_total',
      help: 'File bytes sent (TFTP: in DATA packets, retransmissions excluded; HTTP: response bodies), by source and protocol',
      labelNames: ['source', 'protocol'] as const,
      registers,
    }),
    transferDuration: new Histogram({
      name: 'rtftp_transfer_duration_seconds',
      help: 'Duration of completed transfers, by protocol',
      labelNames: ['protocol'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180],
      registers,
    }),
    activeTransfers: new Gauge({
      name: 'rtftp_transfers_active',
      help: 'Transfers in progress, by protocol',
      labelNames: ['protocol'] as const,
      registers,
    }),
    retransmits: new Counter({
      name: 'rtftp_retransmits_total',
      help: 'Packets sent again after a timeout',
      registers,
    }),
    errorsSent: new Counter({
      name: 'rtftp_errors_sent_total',
      help: 'TFTP ERROR packets sent, by error code name',
      labelNames: ['code'] as const,
      registers,
    }),
    refused: new Counter({
      name: 'rtftp_requests_refused_total',
      help: "Requests refused, by reason and protocol; admission refuses before any data or at the client's first ACK (server-busy, client-busy, subnet-busy, memory-budget, pending-evicted)",
      labelNames: ['reason', 'protocol'] as const,
      registers,
    }),
    malformed: new Counter({
      name: 'rtftp_malformed_packets_total',
      help: 'Datagrams that did not parse as TFTP',
      registers,
    }),
    clientLastTransfer: new Gauge({
      name: 'rtftp_client_last_transfer_timestamp_seconds',
      help: 'Unix time of the last completed transfer per client (bounded number of clients kept)',
      labelNames: ['client'] as const,
      registers,
    }),
    ready: new Gauge({
      name: 'rtftp_ready',
      help: '1 when the TFTP sockets are bound, the root is readable and (--require-snapshot) a config snapshot is served',
      registers,
    }),
    // NBD disks (both backends)
    nbdConfigs: new Gauge({
      name: 'rtftp_nbd_configs',
      help: 'Known <ip>.nbd configs by state (valid, invalid)',
      labelNames: ['state'] as const,
      registers,
    }),
    nbdConfigErrors: new Counter({
      name: 'rtftp_nbd_config_errors_total',
      help: 'Config files found invalid (counted once per file version)',
      registers,
    }),
    nbdSessionsActive: new Gauge({
      name: 'rtftp_nbd_sessions_active',
      help: 'Connected NBD disks by backend (guestfs, native)',
      labelNames: ['backend'] as const,
      registers,
    }),
    nbdLaunchSeconds: new Histogram({
      name: 'rtftp_nbd_session_launch_seconds',
      help: 'Time to connect a disk (appliance launch and mounts, or native handshake and probes)',
      labelNames: ['backend'] as const,
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 60, 120],
      registers,
    }),
    nbdLaunchFailures: new Counter({
      name: 'rtftp_nbd_launch_failures_total',
      help: 'Failed disk connections by reason',
      labelNames: ['backend', 'reason'] as const,
      registers,
    }),
    nbdReadBytes: new Counter({
      name: 'rtftp_nbd_read_bytes_total',
      help: 'Bytes read from NBD disks',
      labelNames: ['backend'] as const,
      registers,
    }),
    nbdReadErrors: new Counter({
      name: 'rtftp_nbd_read_errors_total',
      help: 'Reads from NBD disks that failed',
      labelNames: ['backend'] as const,
      registers,
    }),
    nbdCacheHits: new Counter({
      name: 'rtftp_nbd_cache_hits_total',
      help: 'Block cache hits (native backend)',
      registers,
    }),
    nbdCacheMisses: new Counter({
      name: 'rtftp_nbd_cache_misses_total',
      help: 'Block cache misses (native backend)',
      registers,
    }),
    // -1 until KVM is decided (at start when guestfish is installed, see disk-sources.ts):
    // a 0 before anything probed would page RtftpKvmUnavailable for nothing.
    kvmAvailable: unknownUntilSet(
      new Gauge({
        name: 'rtftp_kvm_available',
        help: '1 when libguestfs appliances run with KVM, 0 when they fall back to TCG, -1 until probed',
        registers,
      }),
    ),
    // Which build runs where (docs/runbooks.md, "Version and process metrics").
    buildInfo: buildInfoGauge(registers, 'dataplane'),
    // Listening and the config snapshot gate (issue 14).
    listenAddresses: new Gauge({
      name: 'rtftp_listen_addresses',
      help: 'Local addresses the TFTP server listens on (0: --listen matches nothing on this node)',
      registers,
    }),
    listenReceiveBuffer: new Gauge({
      name: 'rtftp_listen_receive_buffer_bytes',
      help: 'Receive buffer of the listening sockets, as the kernel reports it (the smallest; --listen-buffer, capped by net.core.rmem_max)',
      registers,
    }),
    listenDrops: new Counter({
      name: 'rtftp_listen_drops_total',
      help: 'Requests the kernel dropped at the listening sockets because their receive buffer was full (each costs a client a retransmission timeout)',
      registers,
    }),
    requestsDropped: new Counter({
      name: 'rtftp_requests_dropped_total',
      help: 'Read requests dropped with no reply, by reason (snapshot-pending: no complete config snapshot yet)',
      labelNames: ['reason'] as const,
      registers,
    }),
    configSnapshotTimestamp: new Gauge({
      name: 'rtftp_config_snapshot_timestamp_seconds',
      help: 'Unix time the served config snapshot was complete (syncedAt of its marker); 0 while none is served',
      registers,
    }),
    configSnapshotInfo: new Gauge({
      name: 'rtftp_config_snapshot_info',
      help: 'Always 1, for the served config snapshot: source is api (from the API server) or node (the copy kept on the node)',
      labelNames: ['source'] as const,
      registers,
    }),
    configSnapshotResourceVersion: new Gauge({
      name: 'rtftp_config_snapshot_resource_version_info',
      help: 'Always 1, one per rendered ConfigMap (shard) of the served config snapshot, with its resourceVersion',
      labelNames: ['configmap', 'resource_version'] as const,
      registers,
    }),
    // Admission (docs/admission.md)
    transfersPending: new Gauge({
      name: 'rtftp_transfers_pending',
      help: 'Requests whose client has not answered yet (unproven, possibly spoofed), held in the pending pool',
      registers,
    }),
    transferMemory: new Gauge({
      name: 'rtftp_transfer_memory_bytes',
      help: 'Buffer memory reserved by proven transfers, against --max-transfer-memory',
      registers,
    }),
    transferMemoryBudget: new Gauge({
      name: 'rtftp_transfer_memory_budget_bytes',
      help: 'The memory budget of all transfers (--max-transfer-memory)',
      registers,
    }),
    nbdTargetsRefused: new Counter({
      name: 'rtftp_nbd_targets_refused_total',
      help: "NBD connects refused before any connection by --nbd-allow or a config's nbd_allow, by rule (reserved: loopback, link-local, --nbd-deny; not-allowed: outside every entry; socket: an unlisted unix socket)",
      labelNames: ['rule'] as const,
      registers,
    }),
    // Budgets and health (sources/budget.ts, health/)
    nbdOpenOverBudget: new Counter({
      name: 'rtftp_nbd_open_over_budget_total',
      help: 'Opens and reads of NBD disk files stopped past a budget, by budget (page-reads, symlink-hops, directory-entries, wall-time)',
      labelNames: ['reason'] as const,
      registers,
    }),
    healthStallSeconds: new Gauge({
      name: 'rtftp_health_stall_seconds',
      help: 'Longest stall seen by the health canaries within their window, by part (event-loop, thread-pool)',
      labelNames: ['part'] as const,
      registers,
    }),
    // Worker mode (docs/performance.md): worker threads' metrics are merged into these on /metrics.
    workers: new Gauge({
      name: 'rtftp_workers',
      help: 'Worker threads serving clients (--workers); 1 when everything runs on the main thread',
      registers,
    }),
    workerRestarts: new Counter({
      name: 'rtftp_worker_restarts_total',
      help: 'Worker threads that died and were started again (their transfers were lost; clients retry)',
      registers,
    }),
    // HTTP boot (http-boot/, docs/http-boot.md)
    httpResponses: new Counter({
      name: 'rtftp_http_responses_total',
      help: 'Responses of the HTTP boot server, by status code (200, 206, 304, 400, 403, 404, 405, 416, 503)',
      labelNames: ['code'] as const,
      registers,
    }),
  };
}

/** The protocol label of transfer metrics and the per-transfer log line. */
export type TransferProtocol = 'tftp' | 'http';

export type DataplaneMetrics = ReturnType<typeof createDataplaneMetrics>;
