/** Small bounded helpers of the server: an error reply budget and the per-client gauge. */
import type { Gauge } from 'prom-client';

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
