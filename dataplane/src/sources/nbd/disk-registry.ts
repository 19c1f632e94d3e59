/**
 * The connected NBD disks, one slot per client IP with a valid config. A slot connects
 * proactively (prefetch) or on its first request, is closed after its idle timeout, and
 * is replaced when its config changes. A failed connect is retried with exponential
 * backoff (never a hot loop); a session that died is relaunched on the next request.
 * Retired slots (config changed or removed) close once their open files are closed.
 *
 * Each slot's connect runs on its own; a request waits only for its own disk.
 */
import type { Logger } from 'pino';
import type { NbdConfig } from '../../../../common/src/nbd-config.ts';
import type { DataplaneMetrics } from '../../metrics.ts';
import type { DiskBackendName, DiskConnector, DiskSession } from '../disk-session.ts';
import { DiskSlot } from './disk-slot.ts';
import type { SlotStatus } from './disk-slot.ts';

export type DiskConnectors = Partial<Record<DiskBackendName, DiskConnector>>;

export interface DiskRegistryOptions {
  connectors: DiskConnectors;
  /** For backend 'auto': may the native reader serve this config? Absent: guestfs unless only native exists. */
  canServeNatively?: (config: NbdConfig) => boolean;
  logger: Logger;
  metrics: DataplaneMetrics;
  idleTimeoutMs: number;
  maxSessions: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
}

export type AcquireResult =
  | { status: 'ready'; session: DiskSession; slot: DiskSlot }
  | { status: 'unavailable'; reason: string }
  | { status: 'not-ready' };

export class DiskRegistry {
  private readonly slots = new Map<string, DiskSlot>();
  private readonly retired = new Set<DiskSlot>();
  private readonly sweeper: NodeJS.Timeout;
  /** Requests waiting for room under --max-sessions (bounded by admission's transfers). */
  private readonly roomWaiters = new Set<() => void>();

  constructor(private readonly opts: DiskRegistryOptions) {
    const every = Math.max(200, Math.min(5000, opts.idleTimeoutMs / 4));
    this.sweeper = setInterval(() => this.closeIdle(), every);
    this.sweeper.unref();
  }

  /** Picks the backends to try for a config, in order. */
  backendsFor(config: NbdConfig): DiskBackendName[] {
    const { connectors } = this.opts;
    if (config.backend !== 'auto') return [config.backend];
    const nativeFits =
      connectors.native && (this.opts.canServeNatively?.(config) ?? !connectors.guestfs);
    const order: DiskBackendName[] = nativeFits ? ['native', 'guestfs'] : ['guestfs', 'native'];
    return order.filter((b) => connectors[b]);
  }

  has(clientIp: string): boolean {
    return this.slots.has(clientIp);
  }

  setConfig(clientIp: string, config: NbdConfig, file: string): void {
    const old = this.slots.get(clientIp);
    if (old && JSON.stringify(old.config) === JSON.stringify(config)) return;
    if (old) this.retire(old, 'config changed');
    const slot = new DiskSlot({
      clientIp,
      file,
      config,
      backends: this.backendsFor(config),
      connectors: this.opts.connectors,
      logger: this.opts.logger.child({ client: clientIp, config: file }),
      metrics: this.opts.metrics,
      retryBaseMs: this.opts.retryBaseMs ?? 2000,
      retryMaxMs: this.opts.retryMaxMs ?? 30_000,
      idleTimeoutMs: (config.idleTimeout ?? 0) * 1000 || this.opts.idleTimeoutMs,
      makeRoom: () => this.makeRoom(),
      waitForRoom: (ms, signal) => this.waitForRoom(ms, signal),
      roomMaybe: () => this.roomMaybe(),
    });
    this.slots.set(clientIp, slot);
    if (config.prefetch) slot.connectInBackground('config appeared');
  }

  removeConfig(clientIp: string): void {
    const slot = this.slots.get(clientIp);
    if (!slot) return;
    this.slots.delete(clientIp);
    this.retire(slot, 'config removed');
  }

  private retire(slot: DiskSlot, why: string): void {
    this.retired.add(slot);
    void slot.retire(why).finally(() => this.retired.delete(slot));
  }

  /**
   * The session of a client's disk: at once when connected, after at most `waitMs` while
   * it connects ('not-ready' past that), 'unavailable' when it failed and is backing off.
   */
  async acquire(
    clientIp: string,
    waitMs: number,
    signal: AbortSignal,
  ): Promise<AcquireResult | null> {
    const slot = this.slots.get(clientIp);
    if (!slot) return null;
    const r = await slot.acquire(waitMs, signal);
    return r.status === 'ready' ? { ...r, slot } : r;
  }

  /**
   * Frees a session for a new connect when the limit is reached: closes the least
   * recently used idle one. False when every connected disk is in use.
   */
  private makeRoom(): boolean {
    const all = [...this.slots.values(), ...this.retired];
    const live = all.filter((s) => s.holdsSession);
    if (live.length < this.opts.maxSessions) return true;
    const idle = live.filter((s) => s.idleClosable).sort((a, b) => a.lastUsed - b.lastUsed);
    const victim = idle[0];
    if (!victim) return false;
    void victim.disconnect('least recently used, to stay within --max-sessions');
    return true;
  }

  /** Resolves when a session may have become free, after `ms`, or with the signal. */
  private waitForRoom(ms: number, signal: AbortSignal): Promise<'room' | 'timeout' | 'aborted'> {
    return new Promise((resolve) => {
      const done = (why: 'room' | 'timeout' | 'aborted') => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.roomWaiters.delete(wake);
        resolve(why);
      };
      const wake = () => done('room');
      const onAbort = () => done('aborted');
      const timer = setTimeout(() => done('timeout'), ms);
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.roomWaiters.add(wake);
    });
  }

  /** A session closed or became idle: every waiter tries again (the losers wait again). */
  private roomMaybe(): void {
    for (const wake of [...this.roomWaiters]) wake();
  }

  private closeIdle(): void {
    const now = Date.now();
    for (const slot of this.slots.values()) {
      if (slot.idleClosable && now - slot.lastUsed >= slot.idleTimeoutMs) {
        void slot.disconnect(`idle for ${Math.round((now - slot.lastUsed) / 1000)} s`);
      }
    }
  }

  status(): SlotStatus[] {
    return [...this.slots.values()].map((s) => s.status());
  }

  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.slots.values(), ...this.retired];
    this.slots.clear();
    await Promise.all(all.map((s) => s.disconnect('shutting down', true)));
  }
}
