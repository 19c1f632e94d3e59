/**
 * The controller's shell around render(): informer handlers only enqueue; workers take
 * keys off the queue.
 * - RENDER_KEY: one whole-world reconcile, render everything from the informer cache,
 *   diff against the cached ConfigMaps, write only shards that changed; then queue a
 *   status key for every BootClient whose status would change.
 * - `status:<ns>/<name>`: write one BootClient's status when it changed, retrying on 409
 *   with a fresh read; record its Events.
 * Errors requeue with per-key backoff; terminal ones (the request is wrong) are logged
 * and dropped, since retrying cannot fix them.
 */
import type { Logger } from 'pino';
import type { BootClient } from '../../../common/src/bootclient.ts';
import type { OperatorMetrics } from '../metrics.ts';
import { mergeStatus } from './conditions.ts';
import { EventRecorder } from './event-recorder.ts';
import { ApiCallError, type OperatorApi } from './ports.ts';
import { memoiseValidation, render, type RenderOptions, type RenderResult } from './render.ts';
import type { WorkQueue } from './work-queue.ts';

export const RENDER_KEY = 'render';
const STATUS_PREFIX = 'status:';
const MAX_CONFLICT_RETRIES = 5;
const RENDER_DEBOUNCE_MS = 20;
const FENCED_RETRY_MS = 250;

export interface RenderedConfigMap {
  metadata?: { name?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

export interface ControllerOptions {
  bootClients: ReadonlyMap<string, BootClient>;
  /** The rendered ConfigMaps, by `namespace/name`. */
  configMaps: ReadonlyMap<string, RenderedConfigMap>;
  namespace: string;
  api: OperatorApi;
  queue: WorkQueue;
  metrics: OperatorMetrics;
  log: Logger;
  renderOptions: RenderOptions;
  /** False on a replica that is not the leader: workers then leave keys alone. */
  isLeader: () => boolean;
  now?: () => string;
}

function sameData(a: Record<string, string> | undefined, b: Map<string, string>): boolean {
  const ak = Object.keys(a ?? {});
  if (ak.length !== b.size) return false;
  return ak.every((k) => a![k] === b.get(k));
}

/**
 * The cached object, or the one we wrote when the cache still shows what it replaced (or
 * nothing yet, for a create); forgets our copy once the cache has moved past it.
 */
function freshestOf<T extends { metadata?: { resourceVersion?: string } }>(
  cached: T | undefined,
  key: string,
  written: Map<string, { before: string; object: T }>,
): T | undefined {
  const w = written.get(key);
  if (!w) return cached;
  const rv = cached?.metadata?.resourceVersion ?? '';
  if (rv === w.before) return w.object;
  written.delete(key);
  return cached;
}

export class Controller {
  private last: RenderResult | undefined;
  private readonly validate = memoiseValidation();
  private readonly events: EventRecorder;
  /** Status we wrote, until the informer shows it: avoids a second write from a stale cache. */
  private readonly written = new Map<string, { before: string; object: BootClient }>();
  /** The same for ConfigMaps: a second render before the informer caught up would get a 409. */
  private readonly writtenConfigMaps = new Map<
    string,
    { before: string; object: RenderedConfigMap }
  >();

  constructor(private readonly o: ControllerOptions) {
    this.events = new EventRecorder(o.api, o.metrics, o.log);
  }

  /**
   * Queues the whole-world render after a short delay, so a burst of events (a relist,
   * `kubectl apply -f` of many objects) costs one render, not one per event.
   */
  enqueueRender(): void {
    this.o.queue.addAfter(RENDER_KEY, RENDER_DEBOUNCE_MS);
  }

  async runWorkers(count: number): Promise<void> {
    await Promise.all(Array.from({ length: count }, () => this.worker()));
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.o.queue.get();
      if (key === null) return;
      if (!this.o.isLeader()) {
        // Not leading, or a renewal is late (a long GC pause, a slow API server): keep the
        // key rather than lose it; a standby cycles only the render key, cheaply (and
        // records no reconcile duration for it).
        this.o.queue.addAfter(key, FENCED_RETRY_MS);
        this.o.queue.done(key);
        continue;
      }
      const controller = key === RENDER_KEY ? 'render' : 'status';
      const stop = this.o.metrics.reconcileDuration.startTimer({ controller });
      try {
        if (key === RENDER_KEY) await this.reconcileAll();
        else await this.reconcileStatus(key.slice(STATUS_PREFIX.length));
        this.o.queue.forget(key);
        this.o.metrics.reconciles.inc({ controller, result: 'success' });
      } catch (err) {
        const e =
          err instanceof ApiCallError
            ? err
            : new ApiCallError(String(err), undefined, { cause: err });
        if (e.terminal) {
          this.o.queue.forget(key);
          this.o.metrics.reconciles.inc({ controller, result: 'error' });
          this.o.log.error({ key, err: e.message, status: e.status }, 'Reconcile failed for good');
        } else if (!this.o.isLeader()) {
          // Fenced mid-reconcile (the write was refused): retry once the Lease is renewed.
          this.o.queue.addAfter(key, FENCED_RETRY_MS);
        } else {
          const delayMs = this.o.queue.addRateLimited(key);
          this.o.metrics.reconciles.inc({ controller, result: 'requeue' });
          this.o.log.warn(
            { key, err: e.message, status: e.status, delayMs },
            'Reconcile failed; requeued',
          );
        }
      } finally {
        stop();
        this.o.queue.done(key);
      }
    }
  }

  private async reconcileAll(): Promise<void> {
    const result = render(this.o.bootClients.values(), this.o.renderOptions, this.validate);
    this.validate.prune(this.o.bootClients);
    let written = 0;
    // Shards left over from a larger --shards are emptied, or the sync sidecar (which
    // serves the union of all labelled ConfigMaps) would keep serving their stale configs.
    const shards = new Map(result.shards);
    for (const cm of this.o.configMaps.values()) {
      const name = cm.metadata?.name ?? '';
      if (!shards.has(name) && Object.keys(cm.data ?? {}).length) shards.set(name, new Map());
    }
    for (const [name, data] of shards) {
      const current = freshestOf(
        this.o.configMaps.get(`${this.o.namespace}/${name}`),
        name,
        this.writtenConfigMaps,
      );
      if (current && sameData(current.data, data)) continue;
      try {
        const object = await this.o.api.putConfigMap(
          name,
          Object.fromEntries(data),
          current?.metadata,
        );
        this.writtenConfigMaps.set(name, {
          before: current?.metadata?.resourceVersion ?? '',
          object,
        });
        this.o.metrics.apiWrites.inc({ kind: 'configmap', result: 'success' });
        written++;
      } catch (err) {
        this.o.metrics.apiWrites.inc({
          kind: 'configmap',
          result: (err as ApiCallError).status === 409 ? 'conflict' : 'error',
        });
        throw err;
      }
    }
    this.last = result;
    this.o.metrics.renderedConfigs.set(result.configs.size);
    this.countConditions(result);
    if (written)
      this.o.log.info(
        { configs: result.configs.size, configMapsWritten: written },
        'Configs rendered',
      );
    for (const [key, desired] of result.statuses) {
      const bc = this.freshest(key);
      if (bc && mergeStatus(bc.status, desired, this.now()).changed)
        this.o.queue.add(STATUS_PREFIX + key);
    }
    for (const key of this.written.keys()) if (!result.statuses.has(key)) this.written.delete(key);
  }

  private countConditions(result: RenderResult): void {
    const counts = new Map<string, number>();
    for (const s of result.statuses.values())
      for (const c of s.conditions)
        counts.set(`${c.type}\0${c.status}`, (counts.get(`${c.type}\0${c.status}`) ?? 0) + 1);
    this.o.metrics.bootClients.reset();
    for (const [k, n] of counts) {
      const [condition, status] = k.split('\0') as [string, string];
      this.o.metrics.bootClients.set({ condition, status }, n);
    }
  }

  private now(): string {
    return this.o.now?.() ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  }

  private freshest(key: string): BootClient | undefined {
    return freshestOf(this.o.bootClients.get(key), key, this.written);
  }

  private async reconcileStatus(key: string): Promise<void> {
    const desired = this.last?.statuses.get(key);
    let bc = this.freshest(key);
    for (let attempt = 0; bc && desired; attempt++) {
      const merged = mergeStatus(bc.status, desired, this.now());
      if (!merged.changed) return;
      try {
        const updated = await this.o.api.writeStatus(bc, merged.status);
        this.o.metrics.apiWrites.inc({ kind: 'status', result: 'success' });
        this.written.set(key, { before: bc.metadata.resourceVersion ?? '', object: updated });
        for (const e of merged.events) this.events.record(updated, e);
        return;
      } catch (err) {
        const conflict = err instanceof ApiCallError && (err.status === 409 || err.status === 404);
        this.o.metrics.apiWrites.inc({ kind: 'status', result: conflict ? 'conflict' : 'error' });
        if (!conflict || attempt >= MAX_CONFLICT_RETRIES) throw err;
        // Someone else changed it (a user, a spec edit): read it again and merge anew.
        const [namespace = '', name = ''] = key.split('/');
        bc = (await this.o.api.getBootClient(namespace, name)) ?? undefined;
      }
    }
  }
}
