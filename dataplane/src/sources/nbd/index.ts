/**
 * The NBD part of the dataplane, in one factory for main.ts: the config watcher, the
 * disk registry with its connectors (guestfs here; 'native' passed in by the caller),
 * and the FileSource that sits between the client dir and default/.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { NbdConfig } from '../../../../common/src/nbd-config.ts';
import type { EventEmitter } from 'node:events';
import { NbdConfigWatcher } from '../../config/nbd-config-watcher.ts';
import type { NbdConfigWatcherEvents } from '../../config/nbd-config-watcher.ts';
import type { DataplaneMetrics } from '../../metrics.ts';
import type { DiskConnector } from '../disk-session.ts';
import type { NbdTargetGate } from '../nbd-target-gate.ts';
import type { FileSource } from '../source.ts';
import { DiskRegistry } from './disk-registry.ts';
import { createGuestfsConnector } from './guestfs-connector.ts';
import type { KvmMode } from './kvm-probe.ts';
import { NbdSource } from './nbd-source.ts';
import { SerialDirectory } from '../client-identity.ts';

/**
 * Where configs come from: the config dir's watcher (the default), or in worker mode the
 * main thread's watcher, relaying only the configs of the worker's own clients (workers/).
 */
export type ConfigFeed = EventEmitter<NbdConfigWatcherEvents> &
  Pick<NbdConfigWatcher, 'start' | 'stop' | 'status'>;

export interface NbdSourceOptions {
  root: string;
  /** Where `<ip>.nbd` files are (default: root). */
  configDir?: string;
  logger: Logger;
  metrics: DataplaneMetrics;
  idleTimeoutS: number;
  diskWaitS: number;
  maxSessions: number;
  applianceMemoryMiB: number;
  /** --tcg-cache: MiB of translation cache per appliance under TCG (0: QEMU's 1 GiB). */
  tcgCacheMiB: number;
  workDir?: string;
  /** --appliance-cache-dir: where the supermin appliance is kept across restarts (default <workDir>/cache). */
  applianceCacheDir?: string;
  /** The check before every connect (--nbd-allow); the libguestfs connector uses it. */
  gate?: NbdTargetGate;
  /** Connectors by backend; 'guestfs' defaults to the libguestfs one. */
  connectors?: { guestfs?: DiskConnector; native?: DiskConnector };
  /** For backend 'auto': whether the native reader can serve a config. */
  canServeNatively?: (config: NbdConfig) => boolean;
  /** --nbd-kvm: 'auto' probes (default). */
  kvm?: KvmMode;
  /** --nbd-launch-timeout: seconds for an appliance to launch (default 180). */
  launchTimeoutS?: number;
  /** --nbd-read-timeout: seconds a disk command may make no progress (default 30). */
  readTimeoutS?: number;
  /** --nbd-chunk-size: bytes per pread (default 1 MiB, max 2 MiB). */
  chunkBytes?: number;
  /** --nbd-read-ahead: chunks read ahead per open file (default 2). */
  readAhead?: number;
  /** --nbd-refresh-after: seconds of quiet after which the disk is remounted before an open (default 3). */
  refreshAfterS?: number;
  /** --config-rescan: seconds between safety-net rescans of the config dir (default 10). */
  rescanIntervalS?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Instead of watching the config dir here. */
  configs?: ConfigFeed;
}

export interface NbdSourceHandle {
  source: FileSource;
  /** The serial numbers the configs declare (client-identity.ts). */
  serials: SerialDirectory;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** JSON for GET /status. */
  status(): {
    kvmAvailable: boolean | null;
    configs: unknown[];
    disks: unknown[];
    serials: unknown[];
  };
}

export const MAX_CHUNK_BYTES = 2 * 1024 * 1024;

export function createNbdSource(opts: NbdSourceOptions): NbdSourceHandle {
  const logger = opts.logger;
  const guestfs = opts.connectors?.guestfs
    ? undefined
    : createGuestfsConnector({
        workDir: opts.workDir ?? join(tmpdir(), `rtftp-${process.pid}`),
        ...(opts.applianceCacheDir ? { cacheDir: opts.applianceCacheDir } : {}),
        logger,
        metrics: opts.metrics,
        memsizeMiB: opts.applianceMemoryMiB,
        tcgCacheMiB: opts.tcgCacheMiB,
        kvm: opts.kvm ?? 'auto',
        launchTimeoutMs: (opts.launchTimeoutS ?? 180) * 1000,
        commandTimeoutMs: (opts.readTimeoutS ?? 30) * 1000,
        chunkBytes: Math.min(opts.chunkBytes ?? 1024 * 1024, MAX_CHUNK_BYTES),
        readAhead: opts.readAhead ?? 2,
        refreshAfterMs: (opts.refreshAfterS ?? 3) * 1000,
        ...(opts.gate ? { gate: opts.gate } : {}),
      });
  const connectors = {
    guestfs: opts.connectors?.guestfs ?? guestfs!.connect,
    ...(opts.connectors?.native ? { native: opts.connectors.native } : {}),
  };
  const registry = new DiskRegistry({
    connectors,
    ...(opts.canServeNatively ? { canServeNatively: opts.canServeNatively } : {}),
    logger,
    metrics: opts.metrics,
    idleTimeoutMs: opts.idleTimeoutS * 1000,
    maxSessions: opts.maxSessions,
    ...(opts.retryBaseMs !== undefined ? { retryBaseMs: opts.retryBaseMs } : {}),
    ...(opts.retryMaxMs !== undefined ? { retryMaxMs: opts.retryMaxMs } : {}),
  });
  const watcher: ConfigFeed =
    opts.configs ??
    new NbdConfigWatcher({
      dir: opts.configDir ?? opts.root,
      logger,
      metrics: opts.metrics,
      rescanIntervalMs: (opts.rescanIntervalS ?? 10) * 1000,
    });
  const serials = trackSerials(watcher, logger);
  watcher.on('added', (ip, config, file) => registry.setConfig(ip, config, file));
  watcher.on('changed', (ip, config, _prev, file) => registry.setConfig(ip, config, file));
  watcher.on('removed', (ip) => registry.removeConfig(ip));

  return {
    source: new NbdSource(registry, opts.diskWaitS * 1000),
    serials,
    // The KVM probe and the appliance environment are prepared by the first connect, so a
    // daemon without NBD configs never runs qemu.
    start: () => watcher.start(),
    stop: async () => {
      watcher.stop();
      await registry.stop();
    },
    status: () => ({
      kvmAvailable: guestfs?.kvmAvailable ?? null,
      configs: watcher.status(),
      disks: registry.status(),
      serials: serials.status(),
    }),
  };
}

export { NbdConfigWatcher } from '../../config/nbd-config-watcher.ts';
export { killAllGuestfish } from './guestfish-process.ts';

/**
 * The serials a feed's configs declare, kept current by its events (the one directory of
 * a process, or in worker mode the main thread's: it routes a `<serial>/…` request).
 */
export function trackSerials(feed: ConfigFeed, logger: Logger): SerialDirectory {
  const serials = new SerialDirectory();
  const setSerial = (ip: string, config: NbdConfig, file: string) => {
    serials.set(ip, config.serial);
    const others = serials.conflictsOf(ip);
    if (others.length > 0)
      logger.warn(
        { file, client: ip, serial: config.serial, alsoDeclaredBy: others },
        'Serial declared by several configs; requests for it are refused',
      );
  };
  feed.on('added', (ip, config, file) => setSerial(ip, config, file));
  feed.on('changed', (ip, config, _prev, file) => setSerial(ip, config, file));
  feed.on('removed', (ip) => serials.remove(ip));
  return serials;
}
