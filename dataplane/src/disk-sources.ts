/**
 * The middle of the view chain: NBD disks declared by `<ip>.nbd` configs, read by the
 * native reader (no VM) when it understands the filesystems, by libguestfs otherwise.
 * Wired here so main.ts stays about the server.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DataplaneOptions } from './cli.ts';
import type { DataplaneMetrics } from './metrics.ts';
import type { FileSource } from './sources/source.ts';
import type { SerialLookup } from './sources/client-identity.ts';
import type { SnapshotGate } from './config/snapshot-gate.ts';
import type { DiskConnectOptions } from './sources/disk-session.ts';
import { createNbdSource, killAllGuestfish } from './sources/nbd/index.ts';
import type { ConfigFeed } from './sources/nbd/index.ts';
import { decideKvmAtStart } from './sources/nbd/kvm-probe.ts';
import { connectNative } from './sources/native/index.ts';
import { NbdTargetGate } from './sources/nbd-target-gate.ts';
import { BUILTIN_RESERVED } from '../../common/src/nbd-target-policy.ts';
import { formatCidr } from '../../common/src/cidr.ts';
import { DEFAULT_OPEN_BUDGET } from './sources/budget.ts';

export interface DiskSources {
  sources: FileSource[];
  /** Raspberry Pi serials the configs declare: whose view a `<serial>/…` request gets. */
  serials: SerialLookup;
  status(): Record<string, unknown>;
  stop(): Promise<void>;
}

/** How a worker hosts the disks of its own clients (worker mode, workers/). */
export interface WorkerDisks {
  /** The main thread's watcher, relaying this worker's clients' configs. */
  configs: ConfigFeed;
  /** This worker's share of --max-sessions. */
  maxSessions: number;
}

export async function startDiskSources(
  opts: DataplaneOptions,
  logger: Logger,
  metrics: DataplaneMetrics,
  snapshotGate?: SnapshotGate,
  worker?: WorkerDisks,
): Promise<DiskSources> {
  const workDir = workDirOf(opts);
  // Checked before every NBD connect, by both backends (sources/nbd-target-gate.ts).
  const gate = new NbdTargetGate({
    allow: opts.nbdAllow,
    reserved: [...BUILTIN_RESERVED, ...opts.nbdDeny],
    onRefused: (rule) => metrics.nbdTargetsRefused.inc({ rule }),
  });
  if (opts.nbdAllow)
    logger.info(
      { allow: opts.nbdAllow.entries(), deny: opts.nbdDeny.map((d) => formatCidr(d.cidr)) },
      'NBD targets restricted',
    );
  const nbd = createNbdSource({
    root: opts.root,
    configDir: opts.configDir,
    logger,
    metrics,
    idleTimeoutS: opts.idleTimeoutS,
    diskWaitS: opts.diskWaitS,
    maxSessions: worker?.maxSessions ?? opts.maxSessions,
    ...(worker ? { configs: worker.configs } : {}),
    applianceMemoryMiB: opts.applianceMemoryMiB,
    tcgCacheMiB: opts.tcgCacheMiB,
    workDir,
    ...(opts.applianceCacheDir ? { applianceCacheDir: opts.applianceCacheDir } : {}),
    kvm: opts.nbdKvm,
    launchTimeoutS: opts.nbdLaunchTimeoutS,
    readTimeoutS: opts.nbdReadTimeoutS,
    gate,
    connectors: {
      native: (o: DiskConnectOptions) =>
        connectNative({
          ...o,
          metrics,
          gate,
          readTimeoutMs: opts.nbdReadTimeoutS * 1000,
          budget: {
            ...DEFAULT_OPEN_BUDGET,
            pageReads: opts.openBudgetReads,
            directoryEntries: opts.openBudgetEntries,
            wallMs: opts.openBudgetMs,
          },
        }),
    },
    // backend auto: try the native reader first; it declines (unsupported-filesystem)
    // for anything it cannot read, and the registry then launches libguestfs.
    canServeNatively: () => true,
  });
  // Appliances must never outlive the daemon, whatever way it exits.
  process.once('exit', () => killAllGuestfish());
  // With --require-snapshot the config watcher's first scan runs once the snapshot is
  // complete and before the gate admits a request: every config of it is known by then.
  if (snapshotGate) snapshotGate.runBeforeOpen(() => nbd.start());
  else await nbd.start();
  // In worker mode the main thread decides it, once for the process.
  if (!worker) decideKvm(opts, logger, metrics);
  return {
    sources: [nbd.source],
    serials: nbd.serials,
    status: () => nbd.status(),
    stop: () => nbd.stop(),
  };
}

function workDirOf(opts: DataplaneOptions): string {
  return opts.workDir || join(tmpdir(), `rtftp-${process.pid}`);
}

/**
 * KVM is decided at start, not at the first appliance, so rtftp_kvm_available leaves -1 at
 * once (the first connect reuses this decision). Same cache file as the guestfs connector's.
 */
export function decideKvm(opts: DataplaneOptions, logger: Logger, metrics: DataplaneMetrics): void {
  void decideKvmAtStart({
    mode: opts.nbdKvm,
    cacheFile: join(
      opts.applianceCacheDir || join(workDirOf(opts), 'cache'),
      'rtftp-kvm-probe.json',
    ),
    logger,
    gauge: metrics.kvmAvailable,
  });
}
