/**
 * connectNative: NBD handshake, partition table, filesystems mounted in `mounts` order,
 * each mountpoint checked as libguestfs's mount checks it. No process is started.
 * The target passes the NBD target gate first (../nbd-target-gate.ts): the connection goes
 * to an address the gate checked, never to a name resolved again.
 */
import { DiskError } from '../disk-session.ts';
import type { DiskConnectOptions } from '../disk-session.ts';
import { CONFIG_ONLY_GATE, type NbdTargetGate } from '../nbd-target-gate.ts';
import type { NbdEndpoint } from '../../../../common/src/nbd-config.ts';
import type { DataplaneMetrics } from '../../metrics.ts';
import type { NbdMount } from '../../../../common/src/nbd-config.ts';
import { DEFAULT_OPEN_BUDGET } from '../budget.ts';
import type { BudgetLimits } from '../budget.ts';
import { CachedDisk, DEFAULT_CACHE_BYTES, DiskRange } from './block-cache.ts';
import type { BlockReader } from './block-cache.ts';
import { openFilesystem } from './detect-filesystem.ts';
import { NativeErrorCode, corrupt, diskError } from './errors.ts';
import { NbdClient } from './nbd-client.ts';
import { describeEndpoint } from './nbd-connection.ts';
import { readPartitionTable } from './partition-table.ts';
import type { Partition } from './partition-table.ts';
import { NativeDiskSession } from './native-session.ts';
import { VirtualFs } from './virtual-fs.ts';
import type { Mounted } from './virtual-fs.ts';

export interface NativeConnectOptions extends DiskConnectOptions {
  /** Counts NBD bytes, cache hits/misses and read errors with the backend label 'native'. */
  metrics?: DataplaneMetrics;
  /** Block cache size per disk in bytes (default 4 MiB). */
  cacheBytes?: number;
  connectTimeoutMs?: number;
  readTimeoutMs?: number;
  /** The check before the connect (--nbd-allow); a config's own nbd_allow without one. */
  gate?: NbdTargetGate;
  /** The work one open may cost (sources/budget.ts; default DEFAULT_OPEN_BUDGET). */
  budget?: Readonly<BudgetLimits>;
}

export async function connectNative(opts: NativeConnectOptions): Promise<NativeDiskSession> {
  const { config, configName, signal, metrics } = opts;
  const describe = `${configName} (${describeEndpoint(config.endpoint)})`;
  const targets = await (opts.gate ?? CONFIG_ONLY_GATE).admit(config);
  const connectTo = (endpoint: NbdEndpoint) =>
    NbdClient.connect({
      endpoint,
      signal,
      ...(opts.connectTimeoutMs !== undefined && { connectTimeoutMs: opts.connectTimeoutMs }),
      ...(opts.readTimeoutMs !== undefined && { readTimeoutMs: opts.readTimeoutMs }),
      // Every byte the server sends, metadata and file data (which goes around the cache).
      ...(metrics && {
        onRead: (n: number) => metrics.nbdReadBytes.inc({ backend: 'native' }, n),
      }),
    });
  let client: NbdClient | undefined;
  // A name with several addresses: the next checked one when one refuses the connection.
  for (const [i, target] of targets.entries()) {
    try {
      client = await connectTo(target);
      break;
    } catch (err) {
      const refused = err instanceof DiskError && err.reason === 'connection-refused';
      if (!refused || i === targets.length - 1) throw err;
    }
  }
  if (!client) throw corrupt(`${describe}: no address to connect to`);
  try {
    const disk = new CachedDisk(client, opts.cacheBytes ?? DEFAULT_CACHE_BYTES, (kind) => {
      if (!metrics) return;
      if (kind === 'hit') metrics.nbdCacheHits.inc();
      else metrics.nbdCacheMisses.inc();
    });
    const budget = opts.budget ?? DEFAULT_OPEN_BUDGET;
    const vfs = await mountFilesystems(disk, config.mounts, describe, signal, budget, (fields) =>
      opts.logger.debug({ configName, ...fields }, 'Filesystem mounted natively'),
    );
    return new NativeDiskSession({
      client,
      disk,
      vfs,
      describe,
      budget,
      logger: opts.logger.child({ configName }),
      ...(metrics && {
        onReadError: () => metrics.nbdReadErrors.inc({ backend: 'native' }),
        onOverBudget: (reason) => metrics.nbdOpenOverBudget.inc({ reason }),
      }),
    });
  } catch (err) {
    await client.close();
    if (err instanceof DiskError) throw err;
    if (signal.aborted)
      throw diskError(NativeErrorCode.Aborted, 'other', `${describe}: connect aborted`, err);
    throw corrupt(`${describe}: ${(err as Error).message}`, err);
  }
}

/**
 * Mounts `mounts` in order on `disk`, as libguestfs would: the partition must exist and
 * hold a filesystem we read, the mountpoint must be a directory of what is mounted so far.
 * The whole mount runs on one budget, as one open does.
 */
export async function mountFilesystems(
  disk: CachedDisk,
  mounts: readonly NbdMount[],
  describe: string,
  signal?: AbortSignal,
  budget: Readonly<BudgetLimits> = DEFAULT_OPEN_BUDGET,
  onMounted?: (fields: { partition: number; mountpoint: string; fs: string }) => void,
): Promise<VirtualFs> {
  const ctx = disk.begin(budget, signal);
  let table: Partition[] | undefined;
  const mounted: Mounted[] = [];
  for (const [i, m] of mounts.entries()) {
    signal?.throwIfAborted();
    let dev: BlockReader = disk;
    if (m.partition > 0) {
      table ??= await readPartitionTable(disk, ctx);
      const p = table.find((x) => x.number === m.partition);
      if (!p) {
        const have = table.map((x) => x.number).join(', ') || 'none';
        throw diskError(
          NativeErrorCode.PartitionMissing,
          'partition-missing',
          `${describe}: mounts[${i}]: partition ${m.partition} does not exist (partitions: ${have})`,
        );
      }
      if (p.extended) {
        throw diskError(
          NativeErrorCode.MountFailed,
          'mount-failed',
          `${describe}: mounts[${i}]: partition ${m.partition} is an extended partition, not a filesystem`,
        );
      }
      dev = new DiskRange(disk, p.start, p.size);
    }
    const fs = await openFilesystem(
      dev,
      ctx,
      `${describe}: mounts[${i}] (partition ${m.partition})`,
    );
    let mountpoint = m.mountpoint;
    if (mountpoint !== '/') {
      // As with libguestfs, the mountpoint must be a directory in the tree mounted so far.
      const at = await new VirtualFs(mounted).resolve(mountpoint, ctx);
      if (at.status !== 'found' || at.node.kind !== 'dir') {
        throw diskError(
          NativeErrorCode.MountFailed,
          'mount-failed',
          `${describe}: mounts[${i}].mountpoint ${mountpoint} is not a directory in the filesystems mounted before it`,
        );
      }
      mountpoint = at.path;
    }
    mounted.push({ mountpoint, fs });
    onMounted?.({ partition: m.partition, mountpoint, fs: fs.type });
  }
  return new VirtualFs(mounted);
}
