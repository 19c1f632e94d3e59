/**
 * The sync sidecar: watches the rendered ConfigMaps through the API (read-only RBAC) and
 * keeps the dataplane's config directory equal to their union, within a second of a
 * change, where a ConfigMap volume would lag by kubelet's sync period (about a minute).
 * The TFTP container shares the directory (an emptyDir) and holds no credentials.
 */
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { clientIpOfConfigName } from '../../../common/src/nbd-config.ts';
import type { SyncArgs } from '../cli.ts';
import type { RenderedConfigMap } from '../controller/controller.ts';
import { fileNameOfConfigMapKey } from '../controller/shards.ts';
import { startHttpServer } from '../http/http-server.ts';
import { connectKube } from '../kube/client.ts';
import { configMapInformer } from '../kube/informers.ts';
import { createOperatorMetrics } from '../metrics.ts';
import { ConfigDirWriter } from './config-dir-writer.ts';

/** The union of all shards' configs; keys that are not `<canonical ip>.nbd` are ignored. */
export function desiredFiles(configMaps: Iterable<RenderedConfigMap>): Map<string, string> {
  const out = new Map<string, string>();
  for (const cm of configMaps)
    for (const [key, text] of Object.entries(cm.data ?? {})) {
      const name = fileNameOfConfigMapKey(key);
      if (clientIpOfConfigName(name) !== null) out.set(name, text);
    }
  return out;
}

export async function runSync(args: SyncArgs, log: Logger): Promise<() => Promise<void>> {
  const apis = connectKube();
  const metrics = createOperatorMetrics(new Registry(), true, 'sync');
  const writer = new ConfigDirWriter(args.dir, log);
  await writer.init();
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
          const r = await writer.apply(desiredFiles(informer.cache.values()));
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
