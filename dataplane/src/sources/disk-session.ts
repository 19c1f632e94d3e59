/**
 * One connected NBD disk, whatever reads it: a guestfish appliance ('guestfs') or the
 * native NBD + partition + filesystem reader ('native'). The NBD source (the middle of
 * the view chain) owns sessions: one per `<ip>.nbd` config, connected proactively or
 * on the first request, closed when idle, reconnected when the config changes.
 */
import type { NbdConfig } from '../../../common/src/nbd-config.ts';
import type { OpenedFile } from './source.ts';
import type { Logger } from 'pino';

export type DiskBackendName = 'guestfs' | 'native';

export type DiskOpenResult =
  | {
      status: 'found';
      file: OpenedFile;
      /** absolute path inside the virtual FS after symlinks */ path: string;
    }
  | { status: 'not-found' }
  /** e.g. a directory, a symlink that would leave the virtual FS, a file that is not regular */
  | { status: 'refused'; reason: string };

export interface DiskSession {
  readonly backend: DiskBackendName;
  /**
   * Opens `path` (absolute inside the virtual FS, `tftp_root` already applied), resolving
   * symlinks inside the virtual FS only. Sees changes made on the disk since the last
   * transfer (a kernel upgraded inside the client). Rejects (an Error with a `code`) when
   * the disk itself fails: the transfer ends with a TFTP error and the session is
   * reconnected.
   */
  open(path: string, signal: AbortSignal): Promise<DiskOpenResult>;
  /** True until the session failed for good (dead process, dropped connection). */
  readonly healthy: boolean;
  /** Releases everything (processes, sockets); safe to call twice. */
  close(): Promise<void>;
}

/** Connection error codes, used as the `reason` label of launch failure metrics. */
export type DiskFailureReason =
  | 'connection-refused'
  | 'export-not-found'
  | 'partition-missing'
  | 'mount-failed'
  | 'unsupported-filesystem'
  | 'timeout'
  | 'corrupt'
  /** The target is refused by --nbd-allow or the config's nbd_allow (nbd-target-gate.ts). */
  | 'not-permitted'
  /** past a budget of sources/budget.ts (a hostile disk) */
  | 'over-budget'
  | 'other';

export class DiskError extends Error {
  constructor(
    readonly code: string,
    readonly reason: DiskFailureReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DiskError';
  }
}

export interface DiskConnectOptions {
  config: NbdConfig;
  /** File name of the config, for messages (`10.0.0.5.nbd`). */
  configName: string;
  logger: Logger;
  signal: AbortSignal;
}

/** Connects one disk with one backend; rejects with a DiskError naming the reason. */
export type DiskConnector = (opts: DiskConnectOptions) => Promise<DiskSession>;
