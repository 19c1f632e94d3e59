/**
 * Small helpers of the server: an error reply budget, the per-client gauge, the eviction
 * summary, and what a request from a busy client port means.
 */
import type { Logger } from 'pino';
import type { Gauge } from 'prom-client';
import type { TransferState } from './transfer.ts';

/**
 * Caps ERROR replies per second, so junk sent at the listening port cannot turn the
 * server into a packet reflector.
 */
export class ErrorBudget {
  private tokens: number;
  private last = Date.now();
  constructor(private readonly perSecond: number) {
    this.tokens = perSecond;
  }
  take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(
      this.perSecond,
      this.tokens + ((now - this.last) * this.perSecond) / 1000,
    );
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** rtftp_client_last_transfer_timestamp_seconds, keeping at most `max` clients (oldest dropped). */
export class ClientLastSeen {
  private readonly order = new Map<string, true>();
  constructor(
    private readonly gauge: Gauge<'client'>,
    private readonly max: number,
  ) {}
  mark(client: string): void {
    this.order.delete(client);
    this.order.set(client, true);
    this.gauge.set({ client }, Date.now() / 1000);
    if (this.order.size > this.max) {
      const oldest = this.order.keys().next().value as string;
      this.order.delete(oldest);
      this.gauge.remove({ client: oldest });
    }
  }
}

/**
 * One warn line per window about unproven requests evicted from the pending pool, with
 * the subnets they claimed to come from: a spoofed flood evicts thousands a second, and a
 * line each would turn it into a log flood. (Each eviction is also a debug line, and
 * counted in rtftp_requests_refused_total{reason="pending-evicted"}.)
 */
export class EvictionSummary {
  private count = 0;
  private readonly bySubnet = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly logger: Logger,
    private readonly windowMs = 10_000,
    /** Subnets named in a line, the busiest first; the rest are only counted. */
    private readonly maxSubnets = 5,
  ) {}

  note(subnet: string): void {
    this.count += 1;
    // Bounded: past a few hundred distinct subnets in one window the rest are only counted.
    if (this.bySubnet.has(subnet) || this.bySubnet.size < 256)
      this.bySubnet.set(subnet, (this.bySubnet.get(subnet) ?? 0) + 1);
    this.timer ??= setTimeout(() => this.flush(), this.windowMs).unref();
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.count === 0) return;
    const subnets = Object.fromEntries(
      [...this.bySubnet].sort((a, b) => b[1] - a[1]).slice(0, this.maxSubnets),
    );
    this.logger.warn(
      { evicted: this.count, windowS: this.windowMs / 1000, subnets },
      'Unproven requests evicted',
    );
    this.count = 0;
    this.bySubnet.clear();
  }
}

/** What the server knows of the transfer already running for a client port. */
export interface BusyPort {
  /** The new request is the same as the one that started it (file, mode, options). */
  sameRequest: boolean;
  /** Its state machine; null while the file is still being resolved. */
  state: Pick<TransferState, 'proven' | 'retries' | 'lastBlock' | 'sentUpTo'> | null;
}

/**
 * What a request from the port of a transfer still running means (one transfer per
 * client port: RFC 1350 TIDs):
 * - `repeat`: the client repeats its request — our first packet may not have reached it;
 *   the transfer decides whether to resend (a late duplicate from the network is absorbed);
 * - `supersede`: the client started over — it rebooted and reuses its port (pxelinux and
 *   some ROMs use fixed ones), or asks for another file — so the old transfer ends,
 *   silently, and the new request is served;
 * - `ignore`: a late duplicate of a request whose transfer is running fine. A client never
 *   repeats its RRQ once it has answered, so this is also all a spoofer who guessed a
 *   client's port gets against a transfer that progresses.
 */
export function requestFromBusyPort(busy: BusyPort): 'repeat' | 'supersede' | 'ignore' {
  const s = busy.state;
  if (!s) return busy.sameRequest ? 'ignore' : 'supersede';
  // Everything was sent: the client may be done and our last ACK lost.
  if (s.lastBlock !== null && s.sentUpTo >= s.lastBlock) return 'supersede';
  if (!s.proven) return busy.sameRequest ? 'repeat' : 'supersede';
  // Proven and stalled (a timeout without progress): the client went away and came back.
  return s.retries > 0 ? 'supersede' : 'ignore';
}
