/**
 * A work queue with controller-runtime's semantics:
 * - a key added while already queued is queued once (dedupe);
 * - a key being processed is never handed to a second worker; added meanwhile, it is
 *   queued again when the first worker calls done();
 * - addRateLimited() retries with per-key exponential backoff and jitter; forget() resets it;
 * - addAfter() requeues later (one pending timer per key, the earliest wins).
 * Memory is bounded by the number of distinct keys (one per BootClient plus a few).
 */
export interface WorkQueueOptions {
  baseDelayMs: number;
  maxDelayMs: number;
  /** Random share added to each backoff delay, so many failing keys do not retry in step. */
  jitter: number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private head = 0;
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private waiters: ((key: string | null) => void)[] = [];
  private shuttingDown = false;

  constructor(
    private readonly options: WorkQueueOptions = {
      baseDelayMs: 50,
      maxDelayMs: 60_000,
      jitter: 0.2,
    },
    private readonly random: () => number = Math.random,
  ) {}

  get length(): number {
    return this.queue.length - this.head;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
    } else this.queue.push(key);
  }

  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Requeues with this key's next backoff delay; returns the delay chosen. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const base = Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** n);
    const delay = Math.round(base * (1 + this.options.jitter * this.random()));
    this.addAfter(key, delay);
    return delay;
  }

  /** Retries that failed so far for a key. */
  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  /** The next key to work on, or null once shut down. Call done(key) when finished. */
  get(): Promise<string | null> {
    if (this.length > 0) {
      const key = this.queue[this.head++]!;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const w of this.waiters) w(null);
    this.waiters = [];
  }
}
