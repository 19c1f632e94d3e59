/**
 * Which sync sidecars are alive, from their report Leases (sync-report.ts), judged as
 * client-go's leader election judges a Lease: by this process's clock since it last saw
 * the Lease change, never by comparing the sidecar's clock with ours. A report not renewed
 * for its leaseDurationSeconds is stale: that node is taken as dead and no longer counts.
 *
 * One exception, at first sight (an operator restart): a Lease whose renewTime is older
 * than two lease durations by our clock is stale at once, so a node that died long ago is
 * not counted for one more lease duration after every restart. Clocks would have to be a
 * whole lease duration apart for that to misjudge a live node, and only until its next
 * renewal.
 */
import { readSyncReport, sameReport, type LeaseObject, type SyncReport } from './sync-report.ts';

interface Tracked {
  report: SyncReport;
  resourceVersion: string;
  /** Our clock when we last saw the Lease change; -Infinity: stale since first sight. */
  observedAt: number;
}

export interface LivenessView {
  live: SyncReport[];
  /** Reports not renewed in time (taken as dead nodes). */
  stale: SyncReport[];
  /** When the next live report would go stale without a renewal (ms since the epoch). */
  nextExpiryAt: number | undefined;
}

export class SyncLiveness {
  private readonly byLease = new Map<string, Tracked>();
  /** Leases that are not a valid report, and why: each reported once per reason. */
  private readonly invalid = new Map<string, string>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly onInvalid: (lease: string, reason: string) => void = () => undefined,
  ) {}

  /**
   * Takes an added or updated Lease; true when what it reports changed (the shard
   * versions, the node, the holder), not for a mere renewal.
   */
  upsert(lease: LeaseObject): boolean {
    const key = leaseKey(lease);
    const read = readSyncReport(lease);
    const old = this.byLease.get(key);
    if (!read.ok) {
      if (this.invalid.get(key) !== read.reason) this.onInvalid(key, read.reason);
      this.invalid.set(key, read.reason);
      this.byLease.delete(key);
      return old !== undefined;
    }
    this.invalid.delete(key);
    const rv = lease.metadata?.resourceVersion ?? '';
    const now = this.now();
    const report = read.report;
    let observedAt = now;
    if (old) {
      if (old.resourceVersion === rv) observedAt = old.observedAt;
    } else if (now - report.renewTimeMs > 2 * report.leaseDurationSeconds * 1000) {
      observedAt = -Infinity;
    }
    this.byLease.set(key, { report, resourceVersion: rv, observedAt });
    return !old || !sameReport(old.report, report);
  }

  remove(lease: LeaseObject): boolean {
    this.invalid.delete(leaseKey(lease));
    return this.byLease.delete(leaseKey(lease));
  }

  /**
   * The live and stale reports now. A node is counted once: if two Leases name it (a
   * renamed Lease, a forged one), the one seen changing last is its report.
   */
  view(): LivenessView {
    const now = this.now();
    const latest = new Map<string, Tracked>();
    for (const t of this.byLease.values()) {
      const seen = latest.get(t.report.node);
      if (!seen || t.observedAt > seen.observedAt) latest.set(t.report.node, t);
    }
    const live: SyncReport[] = [];
    const stale: SyncReport[] = [];
    let nextExpiryAt: number | undefined;
    for (const t of latest.values()) {
      const expiresAt = t.observedAt + t.report.leaseDurationSeconds * 1000;
      if (now < expiresAt) {
        live.push(t.report);
        nextExpiryAt = Math.min(nextExpiryAt ?? Infinity, expiresAt);
      } else stale.push(t.report);
    }
    return { live, stale, nextExpiryAt };
  }
}

function leaseKey(lease: LeaseObject): string {
  return `${lease.metadata?.namespace ?? ''}/${lease.metadata?.name ?? ''}`;
}
