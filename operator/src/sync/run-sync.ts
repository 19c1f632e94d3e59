/**
 * The sync sidecar: watches the rendered ConfigMaps through the API (read-only RBAC) and
 * keeps the dataplane's config directory equal to their union, within a second of a
 * change, where a ConfigMap volume would lag by kubelet's sync period (about a minute).
 * The TFTP container shares the directory (an emptyDir) and holds no credentials.
 * Only the shards the operator wrote are served (trusted-shards.ts), and only a complete
 * set of them (every shard name present).
 *
 * Configs survive the control plane (snapshot-sync.ts): the last complete snapshot is kept
 * on the node (--snapshot-dir) and restored at start, before and without the API server,
 * and the marker that opens the dataplane's --require-snapshot gate is written after each
 * complete snapshot. With --node-name it reports the shard versions it applied in a
 * per-node Lease (sync-reporter.ts), from which the operator sets BootClients' Ready.
 */
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { SyncArgs } from '../cli.ts';
import { startHttpServer } from '../http/http-server.ts';
import { connectKube } from '../kube/client.ts';
import { configMapInformer } from '../kube/informers.ts';
import { syncReportWriter } from '../kube/sync-report-lease.ts';
import { createOperatorMetrics } from '../metrics.ts';
import { ConfigDirWriter } from './config-dir-writer.ts';
import { NodeSnapshotStore } from './node-snapshot.ts';
import { SnapshotSync } from './snapshot-sync.ts';
import { SyncReporter } from './sync-reporter.ts';
import { ShardTrust, shardListing } from './trusted-shards.ts';

/** How long after start the sidecar says, loudly, that it has nothing to serve; then how often. */
const NO_SNAPSHOT_FIRST_MS = 10_000;
const NO_SNAPSHOT_REPEAT_MS = 60_000;

export async function runSync(args: SyncArgs, log: Logger): Promise<() => Promise<void>> {
  const apis = connectKube();
  const metrics = createOperatorMetrics(new Registry(), true, 'sync');
  const writer = new ConfigDirWriter(args.dir, log);
  await writer.init();
  const snapshots = new SnapshotSync({
    writer,
    store: args.snapshotDir ? new NodeSnapshotStore(args.snapshotDir) : undefined,
    namespace: args.namespace,
    log,
    metrics,
  });
  const reporter = args.nodeName
    ? new SyncReporter({
        write: syncReportWriter(apis, args.namespace),
        nodeName: args.nodeName,
        identity: args.identity,
        intervalMs: args.reportIntervalMs,
        leaseDurationSeconds: args.reportLeaseDurationSeconds,
        log,
        metrics,
      })
    : undefined;
  if (!reporter)
    log.info(
      {},
      'No --node-name: applied configs are not reported (BootClients get no Ready=True)',
    );
  const report = () => {
    const s = snapshots.served;
    reporter?.update(s?.resourceVersions ?? {}, s?.source ?? 'none');
  };
  const trust = new ShardTrust(args.shards, (cm, reason) => {
    metrics.syncIgnored.inc({ reason });
    log.warn(
      {
        configMap: cm.metadata?.name,
        resourceVersion: cm.metadata?.resourceVersion,
        reason,
        shards: args.shards,
      },
      'ConfigMap ignored: not written by the operator',
    );
  });
  let running = false;
  let again = false;
  let retry: NodeJS.Timeout | undefined;
  let missingShards = '';
  const informer = configMapInformer(apis, args.namespace, args.selector, {
    log,
    watchTimeoutSeconds: args.watchTimeoutSeconds,
    onEvent: () => schedule(),
    onRestart: (reason) => {
      metrics.watchRestarts.inc({ resource: 'configmaps', reason });
      // The API server did not answer and nothing is served: say so now, not in 10 s.
      if (reason === 'error' && !informer.hasSynced && !warnedNoSnapshot) warnNoSnapshot();
    },
  });
  // Single flight: events during a sync fold into one more sync after it.
  const schedule = (): void => {
    if (!informer.hasSynced) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    void (async () => {
      do {
        again = false;
        try {
          await syncOnce();
        } catch (err) {
          metrics.syncErrors.inc();
          log.error({ dir: args.dir, err: (err as Error).message }, 'Config sync failed; retrying');
          clearTimeout(retry);
          retry = setTimeout(schedule, 1000);
        }
      } while (again);
      running = false;
    })();
  };
  const syncOnce = async (): Promise<void> => {
    const listing = shardListing(trust.trusted(informer.cache.values()), args.shards);
    if (!listing.complete) {
      const missing = listing.missing.join(',');
      if (missing !== missingShards)
        log.warn(
          { missing: listing.missing, served: snapshots.served?.source ?? 'nothing' },
          "Operator's shards incomplete; the snapshot served stays until every shard is listed",
        );
      missingShards = missing;
      return;
    }
    missingShards = '';
    const started = Date.now();
    const r = await snapshots.applyApi(listing);
    if (!r) return;
    metrics.syncWrites.inc({ operation: 'write' }, r.written);
    metrics.syncWrites.inc({ operation: 'delete' }, r.deleted);
    metrics.syncWrites.inc({ operation: 'skip' }, r.skipped);
    metrics.syncFiles.set(writer.fileCount);
    if (r.written || r.deleted)
      log.info(
        { dir: args.dir, ...r, files: writer.fileCount, durationMs: Date.now() - started },
        'Configs synced',
      );
    report();
  };

  // Before the API: the node's copy, so the dataplane serves at once after a restart.
  await snapshots.restore();
  metrics.syncFiles.set(writer.fileCount);
  // Nothing served: say why (at the first failed list, or after a while), and again
  // every minute until something is.
  let warnedNoSnapshot = false;
  let noSnapshotTimer: NodeJS.Timeout | undefined;
  function warnNoSnapshot(): void {
    clearTimeout(noSnapshotTimer);
    if (snapshots.served) return;
    warnedNoSnapshot = true;
    log.error(
      {
        nodeSnapshot: snapshots.nodeCopyState,
        api: !informer.hasSynced
          ? `not listed yet (${informer.lastError ?? 'no answer'})`
          : `listed, but the operator's shards are incomplete (missing ${missingShards})`,
      },
      'No complete config snapshot: the dataplane answers no request and stays not ready until one is',
    );
    noSnapshotTimer = setTimeout(warnNoSnapshot, NO_SNAPSHOT_REPEAT_MS);
  }
  noSnapshotTimer = setTimeout(warnNoSnapshot, NO_SNAPSHOT_FIRST_MS);
  const http =
    args.metricsPort >= 0
      ? await startHttpServer({
          port: args.metricsPort,
          host: args.metricsListen,
          probePort: args.probePort,
          registry: metrics.registry,
          // Ready once a complete snapshot is in the config dir, from the node or the API.
          ready: () => snapshots.served !== undefined,
          notReadyReason: 'no complete config snapshot yet',
          log,
        })
      : undefined;
  reporter?.start();
  report();
  informer.start();
  void informer.synced.then(schedule);
  return async () => {
    informer.stop();
    clearTimeout(retry);
    clearTimeout(noSnapshotTimer);
    await reporter?.stop();
    await http?.close();
    log.info({}, 'Sync stopped');
  };
}
