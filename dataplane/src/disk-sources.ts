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
import type { DiskConnectOptions } from './sources/disk-session.ts';
import { createNbdSource, killAllGuestfish } from './sources/nbd/index.ts';
import { connectNative } from './sources/native/index.ts';
import { DEFAULT_OPEN_BUDGET } from './sources/budget.ts';

export interface DiskSources {
  sources: FileSource[];
  status(): Record<string, unknown>;
  stop(): Promise<void>;
}

export async function startDiskSources(
  opts: DataplaneOptions,
  logger: Logger,
  metrics: DataplaneMetrics,
): Promise<DiskSources> {
  const workDir = opts.workDir || join(tmpdir(), `rtftp-${process.pid}`);
  const nbd = createNbdSource({
    root: opts.root,
    configDir: opts.configDir,
    logger,
    metrics,
    idleTimeoutS: opts.idleTimeoutS,
    diskWaitS: opts.diskWaitS,
    maxSessions: opts.maxSessions,
    applianceMemoryMiB: opts.applianceMemoryMiB,
    tcgCacheMiB: opts.tcgCacheMiB,
    workDir,
    ...(opts.applianceCacheDir ? { applianceCacheDir: opts.applianceCacheDir } : {}),
    kvm: opts.nbdKvm,
    launchTimeoutS: opts.nbdLaunchTimeoutS,
    readTimeoutS: opts.nbdReadTimeoutS,
    connectors: {
      native: (o: DiskConnectOptions) =>
        connectNative({
          ...o,
          metrics,
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
  await nbd.start();
  return {
    sources: [nbd.source],
    status: () => nbd.status(),
    stop: () => nbd.stop(),
  };
}
