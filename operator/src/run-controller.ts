/**
 * Wires the controller: informers (always running, so a standby replica is warm and
 * ready), leader election, and the work queue's workers, which only act while leading.
 * Losing the Lease fences every write at once and ends the process (exit 1), as
 * client-go controllers do: the Deployment restarts it as a fresh candidate.
 */
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { BootClient } from '../../common/src/bootclient.ts';
import type { BootNetwork } from '../../common/src/bootnetwork.ts';
import type { ControllerArgs } from './cli.ts';
import {
  Controller,
  type NamespaceObject,
  type RenderedConfigMap,
} from './controller/controller.ts';
import { HostResolver } from './controller/host-resolver.ts';
import { ShardHistory } from './controller/shard-history.ts';
import { RENDERED_SELECTOR, shardIndexOf } from './controller/shards.ts';
import { SyncLiveness } from './controller/sync-liveness.ts';
import { reservedRanges } from './controller/tenancy.ts';
import { WorkQueue } from './controller/work-queue.ts';
import { startHttpServer } from './http/http-server.ts';
import { connectKube } from './kube/client.ts';
import {
  bootClientInformer,
  bootNetworkInformer,
  configMapInformer,
  namespaceInformer,
  syncReportInformer,
} from './kube/informers.ts';
import type { Informer } from './kube/informer.ts';
import { LeaderElector } from './kube/leader-election.ts';
import { createOperatorApi } from './kube/operator-api.ts';
import { createOperatorMetrics } from './metrics.ts';

/** How long renders wait for Namespace labels before selectors fail closed. */
const NAMESPACES_WAIT_LIMIT_MS = 30_000;

/** Whether an update changes anything render() reads: spec (via generation) or deletion. */
function affectsRender(
  previous: BootClient | BootNetwork,
  next: BootClient | BootNetwork,
): boolean {
  return (
    previous.metadata.generation !== next.metadata.generation ||
    previous.metadata.deletionTimestamp !== next.metadata.deletionTimestamp
  );
}

export async function runController(
  args: ControllerArgs,
  log: Logger,
): Promise<() => Promise<void>> {
  const apis = connectKube();
  const metrics = createOperatorMetrics(new Registry());
  const queue = new WorkQueue();
  const isLeader = () => elector.canWrite();
  const onRestart = (resource: string) => (reason: string) =>
    metrics.watchRestarts.inc({ resource, reason });
  const enqueue = () => controller.enqueueRender();
  const common = { log, watchTimeoutSeconds: args.watchTimeoutSeconds, onEvent: enqueue };
  const bootClients = bootClientInformer(apis, args.watchNamespace, {
    ...common,
    // controller-runtime's GenerationChangedPredicate: a status-only update (most of them
    // ours) changes nothing render reads, and re-rendering on each would be O(n^2) at scale.
    onEvent: (event, obj, previous) => {
      if (event === 'update' && previous && !affectsRender(previous, obj)) return;
      enqueue();
    },
    onRestart: onRestart('bootclients'),
  });
  // Ready: which shard versions hold which config, and what each node's sidecar applied.
  const history = new ShardHistory();
  const configMaps = configMapInformer(apis, args.namespace, RENDERED_SELECTOR, {
    ...common,
    onEvent: (event, cm) => {
      const name = cm.metadata?.name ?? '';
      if (shardIndexOf(cm) !== null) {
        if (event === 'delete') history.forget(name);
        else history.observe(name, cm.metadata?.resourceVersion ?? '', cm.data);
      }
      enqueue();
    },
    onRestart: onRestart('configmaps'),
  });
  const liveness = new SyncLiveness(Date.now, (lease, reason) =>
    log.warn({ lease, reason }, 'Sync report ignored: not a valid report Lease'),
  );
  const reports = syncReportInformer(apis, args.namespace, {
    ...common,
    onEvent: (event, lease) => {
      const changed = event === 'delete' ? liveness.remove(lease) : liveness.upsert(lease);
      if (changed) controller.enqueueReady();
    },
    onRestart: onRestart('leases'),
  });
  // Tenancy: BootClients of namespaces other than the operator's own need a BootNetwork.
  // Watching only its own namespace, the operator reads no BootNetwork at all (and needs
  // no cluster-wide RBAC for them).
  const admission = args.watchNamespace !== args.namespace;
  const bootNetworks = admission
    ? bootNetworkInformer(apis, {
        ...common,
        onEvent: (event, obj, previous) => {
          if (event === 'update' && previous && !affectsRender(previous, obj)) return;
          enqueue();
        },
        onRestart: onRestart('bootnetworks'),
      })
    : undefined;
  // Namespace labels matter only to a namespaceSelector: watched from the first one on.
  // Renders wait for them (a restart must not withdraw selected tenants' configs), but not
  // for ever: without them (RBAC, an API problem) selectors match nothing (fail closed)
  // and the operator's own namespace is still served.
  let namespaces: Informer<NamespaceObject> | undefined;
  let namespacesSince = 0;
  let namespacesGaveUp = false;
  const namespacesReady = () => {
    if (
      namespaces &&
      !namespaces.hasSynced &&
      Date.now() - namespacesSince > NAMESPACES_WAIT_LIMIT_MS
    ) {
      if (!namespacesGaveUp)
        log.error(
          { waitedMs: Date.now() - namespacesSince },
          'Namespace labels unavailable: namespaceSelectors match nothing until they are',
        );
      namespacesGaveUp = true;
      return true;
    }
    if (!namespaces) {
      namespacesSince = Date.now();
      namespaces = namespaceInformer(apis, {
        ...common,
        onEvent: (event, obj, previous) => {
          const labels = (o?: NamespaceObject) => JSON.stringify(o?.metadata?.labels ?? {});
          if (event === 'update' && labels(previous) === labels(obj)) return;
          enqueue();
        },
        onRestart: onRestart('namespaces'),
      });
      log.info({}, 'Namespace labels watched: a BootNetwork selects namespaces');
      namespaces.start();
    }
    return namespaces.hasSynced;
  };
  const controller: Controller = new Controller({
    bootClients: bootClients.cache as Map<string, BootClient>,
    configMaps: configMaps.cache as Map<string, RenderedConfigMap>,
    namespace: args.namespace,
    api: createOperatorApi(apis, {
      namespace: args.namespace,
      identity: args.identity,
      fence: isLeader,
    }),
    queue,
    metrics,
    log,
    renderOptions: { shardCount: args.shards, maxShardBytes: args.maxShardBytes },
    isLeader,
    tenancy: {
      trustedNamespace: args.namespace,
      admission,
      bootNetworks: (bootNetworks?.cache ?? new Map()) as Map<string, BootNetwork>,
      namespaceLabels: (ns) => namespaces?.cache.get(`/${ns}`)?.metadata?.labels,
      namespacesReady,
      reserved: reservedRanges(args.serviceCidrs, args.podCidrs),
      resolver: new HostResolver({ log, ttlMs: args.resolveIntervalSeconds * 1000 }),
      resolveIntervalMs: args.resolveIntervalSeconds * 1000,
      claimRetentionMs: args.claimRetentionSeconds * 1000,
    },
    readiness: { history, liveness },
  });
  const elector: LeaderElector = new LeaderElector({
    api: apis.coordination,
    namespace: args.namespace,
    name: args.leaseName,
    identity: args.identity,
    leaseDurationSeconds: args.leaseDurationSeconds,
    renewDeadlineMs: args.renewDeadlineMs,
    retryPeriodMs: args.retryPeriodMs,
    log,
    onStartedLeading: () => {
      metrics.leader.set(1);
      controller.enqueueRender();
    },
    onStoppedLeading: () => {
      metrics.leader.set(0);
      queue.shutDown();
      void stop().then(() => process.exit(1));
    },
  });
  const ready = () =>
    bootClients.hasSynced &&
    configMaps.hasSynced &&
    reports.hasSynced &&
    (bootNetworks?.hasSynced ?? true) &&
    (namespaces?.hasSynced ?? true);
  const http = await startHttpServer({
    port: args.metricsPort,
    host: args.metricsListen,
    probePort: args.probePort,
    registry: metrics.registry,
    ready,
    log,
  });
  bootClients.start();
  configMaps.start();
  bootNetworks?.start();
  reports.start();
  // Reports too: a Ready computed without them would flip every BootClient to False.
  await Promise.all([bootClients.synced, configMaps.synced, bootNetworks?.synced, reports.synced]);
  log.info(
    {
      watchNamespace: args.watchNamespace || '(all)',
      admission: admission
        ? 'BootNetworks, outside the operator namespace'
        : 'off (own namespace only)',
      serviceCidrs: args.serviceCidrs.length,
      podCidrs: args.podCidrs.length,
      claimRetentionSeconds: args.claimRetentionSeconds,
    },
    'Tenancy configured',
  );
  elector.start();
  const workers = controller.runWorkers(args.workers);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      queue.shutDown();
      bootClients.stop();
      configMaps.stop();
      reports.stop();
      bootNetworks?.stop();
      namespaces?.stop();
      await elector.stop();
      metrics.leader.set(0);
      await workers;
      await http.close();
      log.info({}, 'Operator stopped');
    })());
  return stop;
}
