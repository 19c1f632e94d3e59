/**
 * Reports this node's applied shard versions to the operator (controller/sync-report.ts):
 * written at once when they change, and renewed every interval, so the operator takes a
 * node that stopped renewing as dead once its lease duration has passed. Writes are single
 * flight: changes during a write fold into one more write after it. A failed write is
 * logged once per streak, counted, and retried at the next renewal.
 */
import type { Logger } from 'pino';
import type { OperatorMetrics } from '../metrics.ts';
import {
  microTime,
  syncReportLease,
  syncReportLeaseName,
  type ReportSource,
} from '../controller/sync-report.ts';

/** Writes the report Lease (kube/sync-report-lease.ts). */
export type ReportWrite = (lease: ReturnType<typeof syncReportLease>) => Promise<void>;

export interface SyncReporterOptions {
  write: ReportWrite;
  nodeName: string;
  identity: string;
  intervalMs: number;
  leaseDurationSeconds: number;
  log: Logger;
  metrics: OperatorMetrics;
}

export class SyncReporter {
  private applied: Record<string, string> = {};
  private source: ReportSource = 'none';
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private again = false;
  private failing = false;
  private stopped = false;

  constructor(private readonly o: SyncReporterOptions) {}

  start(): void {
    this.o.log.info(
      {
        lease: syncReportLeaseName(this.o.nodeName),
        node: this.o.nodeName,
        intervalMs: this.o.intervalMs,
        leaseDurationSeconds: this.o.leaseDurationSeconds,
      },
      'Reporting applied configs to the operator',
    );
    this.timer = setInterval(() => void this.flush(), this.o.intervalMs);
    void this.flush();
  }

  /** The snapshot now served changed: report it now. */
  update(applied: Record<string, string>, source: ReportSource): void {
    this.applied = applied;
    this.source = source;
    void this.flush();
  }

  stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    return this.writing ?? Promise.resolve();
  }

  private flush(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.writing) {
      this.again = true;
      return this.writing;
    }
    this.writing = (async () => {
      do {
        this.again = false;
        await this.writeOnce();
      } while (this.again && !this.stopped);
      this.writing = undefined;
    })();
    return this.writing;
  }

  private async writeOnce(): Promise<void> {
    const lease = syncReportLease({
      nodeName: this.o.nodeName,
      holderIdentity: this.o.identity,
      leaseDurationSeconds: this.o.leaseDurationSeconds,
      applied: this.applied,
      source: this.source,
      renewTime: microTime(),
    });
    try {
      await this.o.write(lease);
      this.o.metrics.syncReportWrites.inc({ result: 'success' });
      if (this.failing) this.o.log.info({ lease: lease.metadata.name }, 'Report written again');
      this.failing = false;
    } catch (err) {
      this.o.metrics.syncReportWrites.inc({ result: 'error' });
      if (!this.failing)
        this.o.log.warn(
          { lease: lease.metadata.name, err: (err as Error).message },
          'Report not written; retried at the next renewal (the operator takes this node as dead once its lease runs out)',
        );
      this.failing = true;
    }
  }
}
