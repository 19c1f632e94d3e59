/**
 * Records Events off the status path: a bounded queue with a few senders, so a burst of
 * 10,000 new BootClients does not wait for 20,000 Event writes. Events are best-effort
 * (the conditions say the same thing): when the queue is full, new ones are dropped and
 * counted, as client-go's event broadcaster does.
 */
import type { Logger } from 'pino';
import type { BootClient } from '../../../common/src/bootclient.ts';
import type { OperatorMetrics } from '../metrics.ts';
import type { ConditionEvent } from './conditions.ts';
import type { OperatorApi } from './ports.ts';

const MAX_PENDING = 1000;
const SENDERS = 4;

export class EventRecorder {
  private readonly pending: [BootClient, ConditionEvent][] = [];
  private sending = 0;

  constructor(
    private readonly api: OperatorApi,
    private readonly metrics: OperatorMetrics,
    private readonly log: Logger,
  ) {}

  record(bc: BootClient, event: ConditionEvent): void {
    if (this.pending.length >= MAX_PENDING) {
      this.metrics.apiWrites.inc({ kind: 'event', result: 'dropped' });
      return;
    }
    this.pending.push([bc, event]);
    if (this.sending < SENDERS) void this.send();
  }

  private async send(): Promise<void> {
    this.sending++;
    for (let next = this.pending.shift(); next; next = this.pending.shift()) {
      const [bc, e] = next;
      try {
        await this.api.recordEvent(bc, e);
        this.metrics.apiWrites.inc({ kind: 'event', result: 'success' });
      } catch (err) {
        this.metrics.apiWrites.inc({ kind: 'event', result: 'error' });
        this.log.warn(
          {
            bootClient: `${bc.metadata.namespace}/${bc.metadata.name}`,
            reason: e.reason,
            err: (err as Error).message,
          },
          'Event not recorded',
        );
      }
    }
    this.sending--;
  }
}
