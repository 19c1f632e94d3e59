/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does:
 * a candidate takes the Lease only when its holder has not renewed it for a whole lease
 * duration as measured by this process's clock from when it last saw the Lease change
 * (never by comparing clocks across machines); updates carry the resourceVersion, so two
 * candidates racing get one 409. renewTime/acquireTime are MicroTime (V1MicroTime).
 *
 * Fencing: canWrite() is false as soon as leadership is lost or could have been (the last
 * successful renewal is older than the renew deadline), and every writer checks it.
 */
import { V1MicroTime, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { apiErrorMessage, httpStatusOf } from './client.ts';

export interface LeaderElectionOptions {
  api: CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  /** A leader that could not renew for this long stops writing (less than the lease duration). */
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

export class LeaderElector {
  private leading = false;
  private lastRenewAt = 0;
  private observedRv = '';
  private observedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly o: LeaderElectionOptions) {}

  get isLeader(): boolean {
    return this.leading;
  }

  canWrite(): boolean {
    return this.leading && Date.now() - this.lastRenewAt < this.o.renewDeadlineMs;
  }

  start(): void {
    void this.tick();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (err) {
      this.o.log.warn({ lease: this.o.name, err: apiErrorMessage(err) }, 'Lease renewal failed');
    }
    if (this.stopped) return;
    if (ok) {
      this.lastRenewAt = Date.now();
      if (!this.leading) {
        this.leading = true;
        this.o.log.info({ lease: this.o.name, identity: this.o.identity }, 'Leadership acquired');
        this.o.onStartedLeading();
      }
    } else if (this.leading && !this.canWriteAfterFailure()) {
      this.lose();
      return;
    }
    this.timer = setTimeout(() => void this.tick(), this.o.retryPeriodMs);
  }

  private canWriteAfterFailure(): boolean {
    return Date.now() - this.lastRenewAt < this.o.renewDeadlineMs && this.observedHolderIsMe;
  }

  private observedHolderIsMe = true;

  private lose(): void {
    this.leading = false;
    this.o.log.error({ lease: this.o.name, identity: this.o.identity }, 'Leadership lost');
    this.o.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity } = this.o;
    const now = new V1MicroTime();
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (httpStatusOf(err) !== 404) throw err;
      await api.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: this.o.leaseDurationSeconds,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: 0,
          },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const rv = lease.metadata?.resourceVersion ?? '';
    if (rv !== this.observedRv) {
      this.observedRv = rv;
      this.observedAt = Date.now();
    }
    this.observedHolderIsMe = holder === identity;
    if (holder && holder !== identity) {
      const duration = (spec.leaseDurationSeconds ?? this.o.leaseDurationSeconds) * 1000;
      if (Date.now() < this.observedAt + duration) return false;
    }
    const taking = holder !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: this.o.leaseDurationSeconds,
      renewTime: now,
      // Read back as a plain Date, which would serialise with milliseconds: re-wrap.
      acquireTime: taking ? now : new V1MicroTime(spec.acquireTime ?? now),
      leaseTransitions: (spec.leaseTransitions ?? 0) + (taking && holder ? 1 : 0),
    };
    try {
      const updated = await api.replaceNamespacedLease({ name, namespace, body: lease });
      this.observedRv = updated.metadata?.resourceVersion ?? '';
      this.observedAt = Date.now();
      this.observedHolderIsMe = true;
      return true;
    } catch (err) {
      if (httpStatusOf(err) === 409) {
        this.observedHolderIsMe = false;
        return false;
      }
      throw err;
    }
  }

  /** Stops campaigning; a leader hands the Lease over at once (holder cleared, as client-go's ReleaseOnCancel). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    const { api, namespace, name } = this.o;
    try {
      const lease = await api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      const now = new V1MicroTime();
      lease.spec = {
        ...lease.spec,
        holderIdentity: '',
        leaseDurationSeconds: 1,
        renewTime: now,
        acquireTime: new V1MicroTime(lease.spec.acquireTime ?? now),
      };
      await api.replaceNamespacedLease({ name, namespace, body: lease });
      this.o.log.info({ lease: name }, 'Leadership released');
    } catch (err) {
      this.o.log.warn({ lease: name, err: apiErrorMessage(err) }, 'Lease release failed');
    }
  }
}
