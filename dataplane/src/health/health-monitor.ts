/**
 * Health that tells the truth: /healthz fails when the event loop or libuv's thread pool
 * has been stuck for longer than a bound, so a kubelet restarts a wedged pod instead of
 * probing an HTTP handler that answers while every TFTP client waits.
 *
 * Two canaries, measured by a thin shell around a pure judge:
 *  - the event loop: a timer every `tickMs`; how late it fires is how long the loop was
 *    held (a loop held now cannot answer the probe at all, so the kubelet's own timeout
 *    covers that; the lateness, seen afterwards, covers stalls shorter than its period);
 *  - the thread pool: one cheap fs operation (a stat of `/`) at a time, every `tickMs`;
 *    how long it waits is how long the pool (file reads, opens, DNS) is blocked.
 * A stall longer than `stallLimitMs` makes the process unhealthy while it lasts and for
 * `stallLimitMs` after it ended (so a probe that comes just after still sees it).
 */
import { stat } from 'node:fs/promises';

export type HealthVerdict = { ok: true } | { ok: false; reason: string };

export type HealthPart = 'event-loop' | 'thread-pool';

/** One stall seen: `ms` long, ended (or still going) at `at`. */
export interface Stall {
  part: HealthPart;
  ms: number;
  at: number;
}

export interface HealthLimits {
  /** A stall longer than this is unhealthy. */
  stallLimitMs: number;
  /** How long a stall stays reported after it ended. */
  windowMs: number;
}

/** Default `--health-stall-limit`: docs/health.md says why. */
export const DEFAULT_STALL_LIMIT_S = 10;

const DESCRIBE: Record<HealthPart, string> = {
  'event-loop': 'event loop blocked',
  'thread-pool': 'thread pool blocked (a canary fs.stat waited)',
};

/** The longest stall of each part within the window (ongoing ones included). */
export function worstStalls(stalls: readonly Stall[], now: number, windowMs: number) {
  const worst: Record<HealthPart, number> = { 'event-loop': 0, 'thread-pool': 0 };
  for (const s of stalls) {
    if (now - s.at <= windowMs) worst[s.part] = Math.max(worst[s.part], s.ms);
  }
  return worst;
}

/** Pure: healthy unless a part stalled past the limit within the window. */
export function judgeHealth(
  stalls: readonly Stall[],
  now: number,
  limits: HealthLimits,
): HealthVerdict {
  const worst = worstStalls(stalls, now, limits.windowMs);
  const reasons = (Object.keys(worst) as HealthPart[])
    .filter((part) => worst[part] > limits.stallLimitMs)
    .map(
      (part) =>
        `${DESCRIBE[part]} for ${(worst[part] / 1000).toFixed(1)} s (limit ${(limits.stallLimitMs / 1000).toFixed(1)} s)`,
    );
  return reasons.length ? { ok: false, reason: reasons.join('; ') } : { ok: true };
}

export interface HealthMonitorOptions extends HealthLimits {
  /** How often each canary runs (default 500 ms). */
  tickMs?: number;
  /** The thread pool canary (default: stat of `/`). */
  canary?: () => Promise<unknown>;
  /** Told the worst stall of each part in the window at every tick (the metric). */
  onSample?: (worst: Record<HealthPart, number>) => void;
  now?: () => number;
}

export class HealthMonitor {
  /** Stalls seen, pruned past the window: a few entries at most. */
  private stalls: Stall[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastTick = 0;
  /** Holds of the event loop so far, summed: what the loop took from a canary's wait. */
  private loopLateMs = 0;
  private canaryStarted: number | null = null;
  private lateAtCanaryStart = 0;
  private readonly tickMs: number;
  private readonly canary: () => Promise<unknown>;
  private readonly now: () => number;

  constructor(private readonly opts: HealthMonitorOptions) {
    this.tickMs = opts.tickMs ?? 500;
    this.canary = opts.canary ?? (() => stat('/'));
    this.now = opts.now ?? (() => performance.now());
  }

  start(): void {
    if (this.timer) return;
    this.lastTick = this.now();
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
    this.startCanary();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The verdict now; cheap enough for every probe. */
  check(): HealthVerdict {
    return judgeHealth(this.current(), this.now(), this.opts);
  }

  /** The stalls seen plus the canary still waiting, if any. */
  private current(): Stall[] {
    if (this.canaryStarted === null) return this.stalls;
    const now = this.now();
    return [...this.stalls, { part: 'thread-pool', ms: this.poolWait(now), at: now }];
  }

  /**
   * How long the canary has waited for the pool: its time since it started, less what the
   * event loop was held meanwhile (a completion cannot be seen while the loop is held;
   * that time is the loop's stall, not the pool's).
   */
  private poolWait(now: number): number {
    const started = this.canaryStarted ?? now;
    return Math.max(0, now - started - (this.loopLateMs - this.lateAtCanaryStart));
  }

  /** Shorter than this is jitter (a loaded node), not a stall: neither kept nor subtracted. */
  private get holdMs(): number {
    return Math.min(100, this.opts.stallLimitMs / 10);
  }

  private record(part: HealthPart, ms: number, at: number): void {
    // Only lateness worth reporting is kept: the list stays a handful of entries.
    if (ms >= this.holdMs) this.stalls.push({ part, ms, at });
  }

  private tick(): void {
    const now = this.now();
    const late = Math.max(0, now - this.lastTick - this.tickMs);
    if (late >= this.holdMs) this.loopLateMs += late;
    this.record('event-loop', late, now);
    this.lastTick = now;
    this.stalls = this.stalls.filter((s) => now - s.at <= this.opts.windowMs);
    if (this.canaryStarted === null) this.startCanary();
    this.opts.onSample?.(worstStalls(this.current(), now, this.opts.windowMs));
  }

  private startCanary(): void {
    this.canaryStarted = this.now();
    this.lateAtCanaryStart = this.loopLateMs;
    const done = () => {
      const now = this.now();
      this.record('thread-pool', this.poolWait(now), now);
      this.canaryStarted = null;
    };
    // A failing stat still came back from the pool: that is all the canary measures.
    this.canary().then(done, done);
  }
}
