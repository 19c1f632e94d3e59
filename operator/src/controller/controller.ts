/**
 * The controller's shell around render(): informer handlers only enqueue; workers take
 * keys off the queue.
 * - RENDER_KEY: one whole-world reconcile, render everything from the informer cache,
 *   diff against the cached ConfigMaps, write only shards that changed; then queue a
 *   status key for every BootClient and BootNetwork whose status would change. With
 *   tenancy on, it first compiles the BootNetworks, looks up the hostnames tenants' NBD
 *   URLs name (HostResolver) and reads the claim ledger back from the shards; it renders
 *   again when a vacant claim expires and when DNS answers go stale.
 * - READY_KEY: the Ready condition of every BootClient again (ready.ts), from the last
 *   render, the shard versions seen (shard-history.ts) and the live sync sidecars' reports
 *   (sync-liveness.ts); after a report changed, and when the next live one would go stale.
 *   Every render does the same.
 * - `status:<ns>/<name>`: write one BootClient's status when it changed, retrying on 409
 *   with a fresh read; record its Events. `bnstatus:<name>`: the same for a BootNetwork.
 * Errors requeue with per-key backoff; terminal ones (the request is wrong) are logged
 * and dropped, since retrying cannot fix them.
 */
import type { Logger } from 'pino';
import type { BootClient, BootClientStatus } from '../../../common/src/bootclient.ts';
import type { BootNetwork } from '../../../common/src/bootnetwork.ts';
import type { ReservedRange } from '../../../common/src/nbd-target-policy.ts';
import type { OperatorMetrics } from '../metrics.ts';
import { claimLogFields, readClaimLedger } from './claims.ts';
import { mergeStatus, type ConditionEvent } from './conditions.ts';
import { EventRecorder } from './event-recorder.ts';
import type { HostResolver } from './host-resolver.ts';
import { ApiCallError, type OperatorApi } from './ports.ts';
import { readyConditions, type ReadyCondition } from './ready.ts';
import {
  memoiseValidation,
  render,
  type DesiredStatus,
  type RenderOptions,
  type RenderResult,
  type TenancyInput,
} from './render.ts';
import type { ShardHistory } from './shard-history.ts';
import { shardIndexOf, shardNameIndex } from './shards.ts';
import type { SyncLiveness } from './sync-liveness.ts';
import { compileNetworks, hostnamesToResolve, type CompiledNetworks } from './tenancy.ts';
import type { WorkQueue } from './work-queue.ts';

export const RENDER_KEY = 'render';
export const READY_KEY = 'ready';
const STATUS_PREFIX = 'status:';
const NETWORK_STATUS_PREFIX = 'bnstatus:';
/** How long to wait for the namespace informer before rendering with namespace selectors. */
const NAMESPACES_WAIT_MS = 250;
const MAX_CONFLICT_RETRIES = 5;
const RENDER_DEBOUNCE_MS = 20;
/** Reports arrive one node at a time: a burst (a rollout) costs one Ready pass. */
const READY_DEBOUNCE_MS = 100;
const FENCED_RETRY_MS = 250;

export interface RenderedConfigMap {
  metadata?: { name?: string; resourceVersion?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
}

export interface NamespaceObject {
  metadata?: { name?: string; labels?: Record<string, string> };
}

/** Who may claim what (item 1-3 of docs/security.md's tenant boundaries). */
export interface TenancyOptions {
  /** The operator's own namespace: its BootClients are the admin's and need no BootNetwork. */
  trustedNamespace: string;
  /** False when only the trusted namespace is watched: no BootNetwork is consulted at all. */
  admission: boolean;
  bootNetworks: ReadonlyMap<string, BootNetwork>;
  /** A namespace's labels, for namespaceSelectors, once namespacesReady() said so. */
  namespaceLabels: (namespace: string) => Readonly<Record<string, string>> | undefined;
  /**
   * Whether namespace labels are known; called only when a BootNetwork uses a
   * namespaceSelector, and the shell starts its Namespace informer on the first call.
   */
  namespacesReady: () => boolean;
  reserved: readonly ReservedRange[];
  resolver: HostResolver;
  /** Seconds a DNS answer is used before the name is looked up again. */
  resolveIntervalMs: number;
  claimRetentionMs: number;
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
  tenancy: TenancyOptions;
  /** The Ready condition's inputs; the shell feeds both from its informers. */
  readiness: {
    history: ShardHistory;
    liveness: SyncLiveness;
  };
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
  private ready = new Map<string, ReadyCondition>();
  /** Nodes counted live at the last Ready pass, to log the ones that come and go. */
  private liveNodes = new Set<string>();
  private readonly validate = memoiseValidation();
  private readonly events: EventRecorder;
  /** Status we wrote, until the informer shows it: avoids a second write from a stale cache. */
  private readonly written = new Map<string, { before: string; object: BootClient }>();
  /** The same for ConfigMaps: a second render before the informer caught up would get a 409. */
  private readonly writtenConfigMaps = new Map<
    string,
    { before: string; object: RenderedConfigMap }
  >();
  private readonly writtenNetworks = new Map<string, { before: string; object: BootNetwork }>();
  private networks: CompiledNetworks | undefined;
  /** Leftover shards the API refused to empty (RBAC pins the current names): warned once. */
  private readonly leftoverRefused = new Set<string>();

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

  /** Queues a Ready pass: a sync sidecar's report changed. */
  enqueueReady(): void {
    this.o.queue.addAfter(READY_KEY, READY_DEBOUNCE_MS);
  }

  async runWorkers(count: number): Promise<void> {
    await Promise.all(Array.from({ length: count }, () => this.worker()));
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.o.queue.get();
      if (key === null) return;
      if (!this.o.isLeader() && key === READY_KEY) {
        // A standby writes no status; the render on taking the lead computes Ready.
        this.o.queue.done(key);
        continue;
      }
      if (!this.o.isLeader()) {
        // Not leading, or a renewal is late (a long GC pause, a slow API server): keep the
        // key rather than lose it; a standby cycles only the render key, cheaply (and
        // records no reconcile duration for it).
        this.o.queue.addAfter(key, FENCED_RETRY_MS);
        this.o.queue.done(key);
        continue;
      }
      const controller = key === RENDER_KEY ? 'render' : key === READY_KEY ? 'ready' : 'status';
      const stop = this.o.metrics.reconcileDuration.startTimer({ controller });
      try {
        if (key === RENDER_KEY) await this.reconcileAll();
        else if (key === READY_KEY) this.reconcileReady();
        else if (key.startsWith(NETWORK_STATUS_PREFIX))
          await this.reconcileNetworkStatus(key.slice(NETWORK_STATUS_PREFIX.length));
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

  /**
   * The tenancy half of render's input: undefined when only the operator's own namespace
   * is watched (everything trusted, no claim ledger: one namespace cannot take an IP from
   * another), null when namespace labels are needed and not known yet.
   */
  private async tenancyInput(): Promise<TenancyInput | undefined | null> {
    const t = this.o.tenancy;
    if (!t.admission) {
      this.networks = undefined;
      return undefined;
    }
    const trusted = (ns: string) => ns === t.trustedNamespace;
    this.networks = compileNetworks(t.bootNetworks.values());
    if (this.networks.usesNamespaceSelector && !t.namespacesReady()) return null;
    await t.resolver.refresh(
      hostnamesToResolve(this.o.bootClients.values(), trusted, this.validate),
    );
    const shards: { name: string; data: Record<string, string> | undefined }[] = [];
    for (const cm of this.ownShards())
      shards.push({ name: cm.metadata?.name ?? '', data: cm.data });
    const shardCount = this.o.renderOptions.shardCount;
    return {
      trusted,
      admission: {
        networks: this.networks.networks,
        namespaceLabels: t.namespaceLabels,
        reserved: t.reserved,
        resolved: (host) => t.resolver.get(host),
      },
      claims: readClaimLedger(shards, (name) => (shardNameIndex(name) ?? Infinity) < shardCount),
      now: Date.now(),
      claimRetentionMs: t.claimRetentionMs,
    };
  }

  /** The rendered ConfigMaps this operator wrote (freshest copy): never a look-alike. */
  private *ownShards(): Generator<RenderedConfigMap> {
    const seen = new Set<string>();
    for (const cm of this.o.configMaps.values()) {
      const name = cm.metadata?.name ?? '';
      if (shardIndexOf(cm) === null) continue;
      seen.add(name);
      yield freshestOf(cm, name, this.writtenConfigMaps) ?? cm;
    }
    // Written by us, not yet in the cache (a create the informer has not delivered).
    for (const [name, w] of this.writtenConfigMaps) if (!seen.has(name)) yield w.object;
  }

  private async reconcileAll(): Promise<void> {
    const tenancy = await this.tenancyInput();
    if (tenancy === null) {
      this.o.queue.addAfter(RENDER_KEY, NAMESPACES_WAIT_MS);
      return;
    }
    const result = render(
      this.o.bootClients.values(),
      this.o.renderOptions,
      this.validate,
      tenancy,
    );
    this.validate.prune(this.o.bootClients);
    let written = 0;
    // Shards left over from a larger --shards are emptied once their claims live in the
    // current shards: the sidecar serves only the current names, and stale claims there
    // would otherwise count whenever a current shard lacks one.
    const shards = new Map(result.shards);
    const leftovers = new Set<string>();
    for (const cm of this.ownShards()) {
      const name = cm.metadata?.name ?? '';
      if (!shards.has(name) && Object.keys(cm.data ?? {}).length) {
        shards.set(name, new Map());
        leftovers.add(name);
      }
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
        // Known before the informer delivers it: a node may report it first.
        this.o.readiness.history.observe(name, object.metadata?.resourceVersion ?? '', object.data);
        this.o.metrics.apiWrites.inc({ kind: 'configmap', result: 'success' });
        written++;
      } catch (err) {
        const status = (err as ApiCallError).status;
        this.o.metrics.apiWrites.inc({
          kind: 'configmap',
          result: status === 409 ? 'conflict' : 'error',
        });
        // RBAC pins the operator's writes to the current shard names: a leftover it may
        // not empty is harmless (the sync sidecar serves the current names only).
        if (leftovers.has(name) && (status === 403 || status === 404)) {
          if (!this.leftoverRefused.has(name))
            this.o.log.warn(
              { configMap: name, status },
              'Leftover shard not emptied; the sync sidecar ignores it, delete it by hand',
            );
          this.leftoverRefused.add(name);
          continue;
        }
        throw err;
      }
    }
    this.last = result;
    this.o.metrics.renderedConfigs.set(result.configs.size);
    this.computeReady();
    if (written)
      this.o.log.info(
        { configs: result.configs.size, configMapsWritten: written },
        'Configs rendered',
      );
    for (const id of result.expiredClaims)
      this.o.log.info(claimLogFields(id), 'Claim released: vacant for the whole retention');
    this.queueChangedStatuses();
    for (const key of this.written.keys()) if (!result.statuses.has(key)) this.written.delete(key);
    for (const [name, desired] of this.networks?.statuses ?? []) {
      const bn = this.freshestNetwork(name);
      if (bn && mergeStatus(bn.status, desired, this.now()).changed)
        this.o.queue.add(NETWORK_STATUS_PREFIX + name);
    }
    this.scheduleNextRender(result);
  }

  /** The Ready pass: Ready again for every BootClient of the last render. */
  private reconcileReady(): void {
    if (!this.last) return; // the first render computes it
    this.computeReady();
    this.queueChangedStatuses();
  }

  /**
   * Ready for every BootClient of the last render, from the live reports now; counts the
   * conditions, logs nodes that came or went, and queues the next pass for when the next
   * live report would go stale.
   */
  private computeReady(): void {
    const result = this.last!;
    const view = this.o.readiness.liveness.view();
    this.ready = readyConditions(
      result.statuses.keys(),
      result.placements,
      view.live,
      this.o.readiness.history,
    );
    this.countConditions(result);
    this.o.metrics.dataplaneReports.set({ state: 'live' }, view.live.length);
    this.o.metrics.dataplaneReports.set({ state: 'stale' }, view.stale.length);
    const live = new Set(view.live.map((r) => r.node));
    for (const r of view.live)
      if (!this.liveNodes.has(r.node))
        this.o.log.info(
          { node: r.node, holder: r.holder, source: r.source },
          'Dataplane node reporting',
        );
    for (const r of view.stale)
      if (this.liveNodes.has(r.node))
        this.o.log.warn(
          { node: r.node, holder: r.holder, leaseDurationSeconds: r.leaseDurationSeconds },
          'Dataplane node report went stale; the node no longer counts for Ready',
        );
    this.liveNodes = live;
    if (view.nextExpiryAt !== undefined)
      this.o.queue.addAfter(READY_KEY, Math.max(0, view.nextExpiryAt - Date.now()) + 50);
  }

  /** The status a BootClient should carry: render's conditions and Ready. */
  private desiredOf(key: string): DesiredStatus | undefined {
    const status = this.last?.statuses.get(key);
    const ready = this.ready.get(key);
    if (!status || !ready) return status;
    return { ...status, conditions: [...status.conditions, ready] };
  }

  private queueChangedStatuses(): void {
    for (const key of this.last?.statuses.keys() ?? []) {
      const bc = this.freshest(key);
      const desired = this.desiredOf(key);
      if (bc && desired && mergeStatus(bc.status, desired, this.now()).changed)
        this.o.queue.add(STATUS_PREFIX + key);
    }
  }

  /** Renders again when a vacant claim expires, and when tenants' DNS answers go stale. */
  private scheduleNextRender(result: RenderResult): void {
    const t = this.o.tenancy;
    const waits = [result.requeueAfterMs];
    if (t.admission && t.resolver.size > 0) waits.push(t.resolveIntervalMs);
    const next = Math.min(...waits.filter((w): w is number => w !== undefined));
    // +1 s: a claim expires strictly after its retention; never a busy loop.
    if (Number.isFinite(next)) this.o.queue.addAfter(RENDER_KEY, Math.max(next, 0) + 1000);
  }

  private countConditions(result: RenderResult): void {
    const counts = new Map<string, number>();
    for (const key of result.statuses.keys())
      for (const c of this.desiredOf(key)!.conditions)
        counts.set(`${c.type}\0${c.status}`, (counts.get(`${c.type}\0${c.status}`) ?? 0) + 1);
    this.o.metrics.bootClients.reset();
    for (const [k, n] of counts) {
      const [condition, status] = k.split('\0') as [string, string];
      this.o.metrics.bootClients.set({ condition, status }, n);
    }
    let vacant = 0;
    for (const c of result.claims.values()) if (c.vacantSince) vacant++;
    this.o.metrics.claims.set({ state: 'held' }, result.claims.size - vacant);
    this.o.metrics.claims.set({ state: 'vacant' }, vacant);
  }

  private now(): string {
    return this.o.now?.() ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  }

  private freshest(key: string): BootClient | undefined {
    return freshestOf(this.o.bootClients.get(key), key, this.written);
  }

  private freshestNetwork(name: string): BootNetwork | undefined {
    return freshestOf(this.o.tenancy.bootNetworks.get(`/${name}`), name, this.writtenNetworks);
  }

  private reconcileStatus(key: string): Promise<void> {
    const [namespace = '', name = ''] = key.split('/');
    return this.writeStatus<BootClient>(this.desiredOf(key), this.freshest(key), {
      key,
      written: this.written,
      write: (bc, status) => this.o.api.writeStatus(bc, status),
      reread: () => this.o.api.getBootClient(namespace, name),
      onWritten: (updated, events) => {
        for (const e of events) this.events.record(updated, e);
      },
    });
  }

  private reconcileNetworkStatus(name: string): Promise<void> {
    return this.writeStatus<BootNetwork>(
      this.networks?.statuses.get(name),
      this.freshestNetwork(name),
      {
        key: name,
        written: this.writtenNetworks,
        write: (bn, status) => this.o.api.writeBootNetworkStatus(bn, status),
        reread: () => this.o.api.getBootNetwork(name),
      },
    );
  }

  /** Writes a status when it changed, with the object's resourceVersion; 409/404 → read again, merge, retry. */
  private async writeStatus<
    T extends { metadata: { resourceVersion?: string }; status?: BootClientStatus },
  >(
    desired: DesiredStatus | undefined,
    fresh: T | undefined,
    how: {
      key: string;
      written: Map<string, { before: string; object: T }>;
      write: (obj: T, status: Required<BootClientStatus>) => Promise<T>;
      reread: () => Promise<T | null>;
      onWritten?: (updated: T, events: ConditionEvent[]) => void;
    },
  ): Promise<void> {
    let obj = fresh;
    for (let attempt = 0; obj && desired; attempt++) {
      const merged = mergeStatus(obj.status, desired, this.now());
      if (!merged.changed) return;
      try {
        const updated = await how.write(obj, merged.status);
        this.o.metrics.apiWrites.inc({ kind: 'status', result: 'success' });
        how.written.set(how.key, { before: obj.metadata.resourceVersion ?? '', object: updated });
        how.onWritten?.(updated, merged.events);
        return;
      } catch (err) {
        const conflict = err instanceof ApiCallError && (err.status === 409 || err.status === 404);
        this.o.metrics.apiWrites.inc({ kind: 'status', result: conflict ? 'conflict' : 'error' });
        if (!conflict || attempt >= MAX_CONFLICT_RETRIES) throw err;
        // Someone else changed it (a user, a spec edit): read it again and merge anew.
        obj = (await how.reread()) ?? undefined;
      }
    }
  }
}
