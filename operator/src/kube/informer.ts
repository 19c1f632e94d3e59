/**
 * A list+watch cache that never stops on its own. client-node's ListWatch gives up for
 * good on any error other than 410, and its watch has no working timeout (the abort
 * signal it builds is overwritten), so a silently dead connection would leave the cache
 * stale forever. This one:
 * - lists, then watches from the list's resourceVersion, resuming from the last seen
 *   resourceVersion (bookmarks included) when a watch ends;
 * - re-lists on 410 Gone (history compacted), emitting deletes for objects that vanished;
 * - retries errors with capped exponential backoff;
 * - asks the server to end each watch after `watchTimeoutSeconds` and aborts it itself
 *   when the server has not done so shortly after (the watchdog for stalled watches).
 */
import type { Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { apiErrorMessage, httpStatusOf } from './client.ts';

export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export type InformerEvent = 'add' | 'update' | 'delete';
export type RestartReason = 'closed' | 'expired' | 'error' | 'stalled';

export interface InformerOptions<T extends KubeObject> {
  /** For logs and metrics: 'bootclients', 'configmaps'. */
  resource: string;
  /** The collection path watches go to, e.g. /apis/rtftp.io/v1alpha1/bootclients. */
  path: string;
  list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>;
  watch: Watch;
  labelSelector?: string;
  watchTimeoutSeconds: number;
  log: Logger;
  /** `previous` is the cached object an update replaced. */
  onEvent: (event: InformerEvent, obj: T, previous?: T) => void;
  onRestart?: (reason: RestartReason) => void;
}

const MAX_BACKOFF_MS = 30_000;

export function objectKey(o: KubeObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

export class Informer<T extends KubeObject> {
  readonly cache = new Map<string, T>();
  private resourceVersion = '';
  private stopped = false;
  private abort: (() => void) | undefined;
  private syncedResolve!: () => void;
  readonly synced: Promise<void> = new Promise((r) => (this.syncedResolve = r));
  hasSynced = false;
  /** Why the last list or watch failed, until one succeeds again (for a caller's log). */
  lastError: string | undefined;

  constructor(private readonly o: InformerOptions<T>) {}

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      let reason: RestartReason;
      try {
        if (!this.resourceVersion) await this.relist();
        reason = await this.watchOnce();
      } catch (err) {
        reason = httpStatusOf(err) === 410 ? 'expired' : 'error';
        if (reason === 'error') this.lastError = apiErrorMessage(err);
        if (reason === 'error')
          this.o.log.warn(
            { resource: this.o.resource, err: apiErrorMessage(err), status: httpStatusOf(err) },
            'Watch failed',
          );
      }
      if (this.stopped) return;
      if (reason === 'expired') this.resourceVersion = '';
      this.o.onRestart?.(reason);
      this.o.log.debug({ resource: this.o.resource, reason }, 'Watch restarted');
      if (reason === 'error') {
        failures++;
        const delay = Math.min(MAX_BACKOFF_MS, 200 * 2 ** failures) * (1 + Math.random() * 0.2);
        await new Promise((r) => setTimeout(r, delay));
      } else failures = 0;
    }
  }

  private async relist(): Promise<void> {
    const list = await this.o.list();
    const seen = new Set<string>();
    for (const item of list.items) {
      const key = objectKey(item);
      seen.add(key);
      const old = this.cache.get(key);
      this.cache.set(key, item);
      if (!old) this.o.onEvent('add', item);
      else if (old.metadata?.resourceVersion !== item.metadata?.resourceVersion)
        this.o.onEvent('update', item, old);
    }
    for (const [key, old] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.o.onEvent('delete', old);
      }
    }
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
    this.lastError = undefined;
    if (!this.hasSynced) {
      this.hasSynced = true;
      this.o.log.info({ resource: this.o.resource, objects: this.cache.size }, 'Informer synced');
      this.syncedResolve();
    }
  }

  /** Runs one watch to its end; resolves with why it ended. */
  private watchOnce(): Promise<RestartReason> {
    return new Promise<RestartReason>((resolve, reject) => {
      let outcome: RestartReason | undefined;
      let controller: AbortController | undefined;
      const timeoutMs = this.o.watchTimeoutSeconds * 1000;
      const watchdog = setTimeout(
        () => {
          outcome = 'stalled';
          this.o.log.warn({ resource: this.o.resource }, 'Watch stalled; restarted');
          controller?.abort();
          resolve('stalled');
        },
        timeoutMs + Math.max(2000, timeoutMs / 4),
      );
      this.abort = () => {
        clearTimeout(watchdog);
        controller?.abort();
        resolve('closed');
      };
      const params: Record<string, string | number | boolean> = {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: this.o.watchTimeoutSeconds,
      };
      if (this.o.labelSelector) params.labelSelector = this.o.labelSelector;
      const onEvent = (phase: string, obj: T & { code?: number }) => {
        if (phase === 'ERROR') {
          outcome = obj.code === 410 ? 'expired' : 'error';
          if (outcome === 'error')
            this.o.log.warn({ resource: this.o.resource, status: obj.code }, 'Watch failed');
          return;
        }
        const rv = obj.metadata?.resourceVersion;
        if (phase === 'BOOKMARK') {
          if (rv) this.resourceVersion = rv;
          return;
        }
        const key = objectKey(obj);
        if (phase === 'DELETED') {
          this.cache.delete(key);
          this.o.onEvent('delete', obj);
        } else if (phase === 'ADDED' || phase === 'MODIFIED') {
          const previous = this.cache.get(key);
          this.cache.set(key, obj);
          if (previous) this.o.onEvent('update', obj, previous);
          else this.o.onEvent('add', obj);
        }
        if (rv) this.resourceVersion = rv;
      };
      const onDone = (err: unknown) => {
        clearTimeout(watchdog);
        if (outcome === 'stalled') return;
        if (err && (err as { name?: string }).name !== 'AbortError') {
          if (httpStatusOf(err) === 410) resolve('expired');
          else reject(err);
          return;
        }
        resolve(outcome ?? 'closed');
      };
      this.o.watch
        .watch(this.o.path, params, onEvent, onDone)
        .then((c) => (controller = c))
        .catch((err: unknown) => onDone(err));
    });
  }
}
