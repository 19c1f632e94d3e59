/**
 * The sync sidecar: watches the rendered ConfigMaps through the API (read-only RBAC) and
 * keeps the dataplane's config directory equal to their union, within a second of a
 * change, where a ConfigMap volume would lag by kubelet's sync period (about a minute).
 * The TFTP container shares the directory (an emptyDir) and holds no credentials.
 * Only the shards the operator wrote are served (trusted-shards.ts).
 */
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { SyncArgs } from '../cli.ts';
import { startHttpServer } from '../http/http-server.ts';
import { connectKube } from '../kube/client.ts';
import { configMapInformer } from '../kube/informers.ts';
import { createOperatorMetrics } from '../metrics.ts';
import { ConfigDirWriter } from './config-dir-writer.ts';
import { ShardTrust, desiredFiles } from './trusted-shards.ts';

export async function runSync(args: SyncArgs, log: Logger): Promise<() => Promise<void>> {
  const apis = connectKube();
  const metrics = createOperatorMetrics(new Registry(), true, 'sync');
  const writer = new ConfigDirWriter(args.dir, log);
  await writer.init();
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
  const informer = configMapInformer(apis, args.namespace, args.selector, {
    log,
    watchTimeoutSeconds: args.watchTimeoutSeconds,
    onEvent: () => schedule(),
    onRestart: (reason) => metrics.watchRestarts.inc({ resource: 'configmaps', reason }),
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
          const started = Date.now();
          const r = await writer.apply(desiredFiles(trust.trusted(informer.cache.values())));
          metrics.syncWrites.inc({ operation: 'write' }, r.written);
          metrics.syncWrites.inc({ operation: 'delete' }, r.deleted);
          metrics.syncWrites.inc({ operation: 'skip' }, r.skipped);
          metrics.syncFiles.set(writer.fileCount);
          if (r.written || r.deleted)
            log.info(
              { dir: args.dir, ...r, files: writer.fileCount, durationMs: Date.now() - started },
              'Configs synced',
            );
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
  const http =
    args.metricsPort >= 0
      ? await startHttpServer({
          port: args.metricsPort,
          host: args.metricsListen,
          probePort: args.probePort,
          registry: metrics.registry,
          ready: () => informer.hasSynced,
          log,
        })
      : undefined;
  informer.start();
  await informer.synced;
  schedule();
  return async () => {
    informer.stop();
    clearTimeout(retry);
    await http?.close();
    log.info({}, 'Sync stopped');
  };
}
