/**
 * A DiskSession backed by one libguestfs appliance: one guestfish child, the NBD disk
 * added read-only, the config's mounts mounted read-only in order.
 *
 * Freshness: the appliance's kernel caches what it read, and a file replaced on the disk
 * underneath (kernel upgrade) stays stale; `drop-caches` does not show a replaced FAT
 * file, unmount + mount does. So a session remounts everything before an open that comes
 * after `refreshAfterMs` without any activity and with no file of it open — the first
 * request of the next boot — and never in the middle of one.
 */
import type { Logger } from 'pino';
import type { NbdConfig } from '../../../../common/src/nbd-config.ts';
import { DiskError } from '../disk-session.ts';
import type { DiskOpenResult, DiskSession } from '../disk-session.ts';
import { ChunkedReader } from './chunked-reader.ts';
import { GuestfishError, GuestfishProcess } from './guestfish-process.ts';
import { modeKind, parseStatOutput } from './guestfish-protocol.ts';
import { notRegularReason } from '../source.ts';
import { budgetRefusalReason } from '../budget.ts';
import {
  classifyLaunchError,
  classifyMountError,
  describeEndpoint,
  diagnoseLaunchError,
  sessionFailure,
} from './guestfs-errors.ts';

/** How appliances are run and read: the same for every session of a daemon. */
export interface ApplianceTuning {
  memsizeMiB: number;
  launchTimeoutMs: number;
  /** No-progress timeout of every other command (a hung NBD server). */
  commandTimeoutMs: number;
  chunkBytes: number;
  readAhead: number;
  refreshAfterMs: number;
  guestfishPath?: string;
}

export interface GuestfishSessionOptions extends ApplianceTuning {
  config: NbdConfig;
  configName: string;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  onRead?: (bytes: number) => void;
  onReadError?: () => void;
}

/**
 * Command errors that mean the appliance itself is gone (qemu killed or crashed): guestfish
 * lives on, but every later command would fail the same way.
 */
const APPLIANCE_GONE =
  /call launch before using this function|child process died|appliance closed the connection|connection reset|unexpected end of file|broken pipe/i;

function deviceOf(partition: number): string {
  return partition === 0 ? '/dev/sda' : `/dev/sda${partition}`;
}

function driveOptions(config: NbdConfig): string[] {
  const e = config.endpoint;
  const server =
    e.transport === 'unix'
      ? `server:unix:${e.socket}`
      : `server:tcp:${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;
  return ['protocol:nbd', server, 'format:raw', 'readonly:true'];
}

export class GuestfishSession implements DiskSession {
  readonly backend = 'guestfs' as const;
  private failed: DiskError | undefined;
  private lastActivity = Date.now();
  private openFiles = 0;
  private refreshing: Promise<void> | undefined;

  private constructor(
    private readonly proc: GuestfishProcess,
    private readonly opts: GuestfishSessionOptions,
  ) {}

  /** Launches the appliance and mounts; rejects with a DiskError naming the reason. */
  static async connect(
    opts: GuestfishSessionOptions,
    signal: AbortSignal,
  ): Promise<GuestfishSession> {
    const proc = new GuestfishProcess({
      env: opts.env,
      logger: opts.logger,
      ...(opts.guestfishPath ? { guestfishPath: opts.guestfishPath } : {}),
    });
    const onAbort = () => proc.killNow();
    signal.addEventListener('abort', onAbort, { once: true });
    const t = opts.commandTimeoutMs;
    try {
      try {
        // libguestfs 1.48 opens the NBD export already here (a qcow2 overlay over it),
        // so an unreachable server fails add-drive-opts, not launch.
        await proc.run(
          'add-drive-opts',
          [opts.config.endpoint.exportName, ...driveOptions(opts.config)],
          t,
        );
        await proc.run('set-memsize', [opts.memsizeMiB], t);
        await proc.run('launch', [], opts.launchTimeoutMs);
      } catch (err) {
        throw await diagnoseLaunchError(err, opts.config);
      }
      const qemuPid = Number((await proc.run('get-pid', [], t)).toString().trim());
      if (Number.isInteger(qemuPid) && qemuPid > 0) proc.addChildPid(qemuPid);
      const session = new GuestfishSession(proc, opts);
      await session.mountAll();
      session.lastActivity = Date.now();
      return session;
    } catch (err) {
      await proc.close(0);
      if (signal.aborted) {
        throw new DiskError('RTFTP_ERR_NBD_ABORTED', 'other', 'connect aborted', { cause: err });
      }
      throw err instanceof DiskError ? err : classifyLaunchError(err, opts.config);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private async mountAll(): Promise<void> {
    const mounts = this.opts.config.mounts;
    // Queued back to back in one tick, so no other request runs between them.
    const results = mounts.map((m) =>
      this.proc.run('mount-ro', [deviceOf(m.partition), m.mountpoint], this.opts.commandTimeoutMs),
    );
    const settled = await Promise.allSettled(results);
    const bad = settled.findIndex((r) => r.status === 'rejected');
    if (bad >= 0) {
      throw classifyMountError(
        (settled[bad] as PromiseRejectedResult).reason,
        this.opts.config,
        bad,
      );
    }
  }

  get healthy(): boolean {
    return this.failed === undefined && !this.proc.exited;
  }

  /** Runs a command; a timeout or a dead guestfish marks the session failed for good. */
  private async run(command: string, args: (string | number)[]): Promise<Buffer> {
    if (this.failed) throw this.failed;
    try {
      return await this.proc.run(command, args, this.opts.commandTimeoutMs);
    } catch (err) {
      if (
        err instanceof GuestfishError &&
        (err.code !== 'RTFTP_ERR_GUESTFISH_COMMAND' || APPLIANCE_GONE.test(err.message))
      ) {
        this.failed ??= sessionFailure(err, `disk ${describeEndpoint(this.opts.config)}`);
        this.proc.killNow();
        throw this.failed;
      }
      throw err;
    }
  }

  private async refreshIfQuiet(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    const quietFor = Date.now() - this.lastActivity;
    if (this.openFiles > 0 || quietFor < this.opts.refreshAfterMs) return;
    const started = Date.now();
    this.refreshing = (async () => {
      try {
        const umount = this.run('umount-all', []);
        const mount = this.mountAll();
        await umount;
        await mount;
        this.opts.logger.info(
          { durationMs: Date.now() - started, quietMs: quietFor },
          'Disk remounted',
        );
      } catch (err) {
        // A disk whose mounts fail now is not usable as configured any more.
        this.failed ??= err instanceof DiskError ? err : sessionFailure(err, 'remount');
        throw this.failed;
      } finally {
        this.refreshing = undefined;
        this.lastActivity = Date.now();
      }
    })();
    return this.refreshing;
  }

  async open(path: string, signal: AbortSignal): Promise<DiskOpenResult> {
    if (signal.aborted) return { status: 'not-found' };
    await this.refreshIfQuiet();
    this.lastActivity = Date.now();
    // Both queued at once: one round trip. statns follows symlinks inside the
    // appliance's chroot, so a symlink can never leave the virtual filesystem.
    const real = this.run('realpath', [path]);
    const stat = this.run('statns', [path]);
    let resolved: string;
    let fields: Map<string, number>;
    try {
      resolved = (await real).toString('utf8').replace(/\n$/, '');
      fields = parseStatOutput((await stat).toString('utf8'));
    } catch (err) {
      stat.catch(() => undefined);
      if (err instanceof GuestfishError) {
        if (/No such file or directory|Not a directory/i.test(err.message)) {
          return { status: 'not-found' };
        }
        // A stable reason (a metric label); what guestfish said goes to the log.
        const reason = /Too many levels of symbolic links/i.test(err.message)
          ? budgetRefusalReason('symlink-hops')
          : 'disk refused the path';
        this.opts.logger.warn({ path, reason, err: err.message }, 'Disk open refused');
        return { status: 'refused', reason };
      }
      throw err;
    }
    const mode = fields.get('st_mode') ?? 0;
    const size = fields.get('st_size') ?? 0;
    // Only regular files, as from the native reader and local dirs: a FIFO, device or
    // socket is never pread (statns followed symlinks: this is what the path leads to).
    const kind = modeKind(mode);
    if (kind === 'dir') return { status: 'refused', reason: 'is a directory' };
    if (kind !== 'file') return { status: 'refused', reason: notRegularReason(kind) };
    this.openFiles++;
    const mtimeSec = fields.get('st_mtime_sec');
    const file = new ChunkedReader({
      size,
      ...(mtimeSec !== undefined
        ? { mtimeMs: mtimeSec * 1000 + Math.floor((fields.get('st_mtime_nsec') ?? 0) / 1e6) }
        : {}),
      chunkBytes: this.opts.chunkBytes,
      readAhead: this.opts.readAhead,
      fetch: (position, length) => this.pread(resolved, position, length),
      onClose: () => {
        this.openFiles--;
        this.lastActivity = Date.now();
      },
    });
    return { status: 'found', file, path: resolved };
  }

  private async pread(path: string, position: number, length: number): Promise<Buffer> {
    this.lastActivity = Date.now();
    try {
      const data = await this.run('pread', [path, length, position]);
      this.opts.onRead?.(data.length);
      return data;
    } catch (err) {
      this.opts.onReadError?.();
      throw err instanceof DiskError
        ? err
        : new DiskError('RTFTP_ERR_NBD_READ', 'other', `pread ${path}: ${(err as Error).message}`, {
            cause: err,
          });
    }
  }

  async close(): Promise<void> {
    this.failed ??= new DiskError('RTFTP_ERR_NBD_CLOSED', 'other', 'session closed');
    await this.proc.close();
  }
}
