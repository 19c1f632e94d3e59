/**
 * A disk read natively: the DiskSession for backend 'native'. Every open takes a new
 * cache epoch, so it resolves the path against the disk as it is now (a kernel replaced
 * by the client is served new on its next boot). A file read to its end, or every
 * REVALIDATE_BYTES, has its metadata read again: if it changed, the read rejects with
 * RTFTP_ERR_NATIVE_FILE_CHANGED instead of serving a torn file.
 *
 * Every open, and every read, runs on its own budget (sources/budget.ts). What the disk's
 * contents make impossible — past a budget, corrupt metadata on the path, a file that is
 * not regular — is refused for that request only (the client must not boot default/'s
 * files instead); the disk stays connected for its other files. A disk that fails to
 * answer (connection lost) rejects, and the NBD source reports it unavailable.
 */
import { BudgetExceededError, WorkBudget, budgetRefusalReason } from '../budget.ts';
import type { BudgetLimits, BudgetName } from '../budget.ts';
import type { DiskOpenResult, DiskSession } from '../disk-session.ts';
import { notRegularReason } from '../source.ts';
import type { OpenedFile } from '../source.ts';
import type { Logger } from 'pino';
import type { CachedDisk, ReadContext } from './block-cache.ts';
import type { NbdClient } from './nbd-client.ts';
import { NativeErrorCode, asDiskError, diskError } from './errors.ts';
import type { Filesystem, FsNode } from './filesystem.ts';
import type { VirtualFs } from './virtual-fs.ts';

export const REVALIDATE_BYTES = 8 * 1024 * 1024;
/** The refusal reason of an open whose path crosses metadata that cannot be true. */
export const DISK_CORRUPT_REASON = 'disk corrupt';

export interface NativeSessionParts {
  client: NbdClient;
  disk: CachedDisk;
  vfs: VirtualFs;
  describe: string;
  /** The work one open (and one read) may cost. */
  budget: Readonly<BudgetLimits>;
  onReadError?: () => void;
  /** Told each time an open or a read goes past a budget (the metric). */
  onOverBudget?: (budget: BudgetName) => void;
  logger?: Logger;
}

class NativeFile implements OpenedFile {
  private sinceCheck = 0;
  private closed = false;

  constructor(
    private readonly parts: NativeSessionParts,
    private readonly fs: Filesystem,
    private readonly node: FsNode,
    /** The open's epoch: reads see metadata at least as fresh as the open. */
    private readonly epoch: number,
    private readonly path: string,
  ) {}

  get size(): number {
    return this.node.size;
  }

  get mtimeMs(): number | undefined {
    return this.node.mtimeMs;
  }

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (this.closed) throw diskError(NativeErrorCode.Closed, 'other', `${this.path}: file closed`);
    const n = Math.max(0, Math.min(length, this.node.size - position));
    if (n === 0) return 0;
    try {
      const ctx: ReadContext = { epoch: this.epoch, budget: new WorkBudget(this.parts.budget) };
      await this.fs.readInto(this.node, position, n, buf, offset, ctx);
      this.sinceCheck += n;
      if (position + n >= this.node.size || this.sinceCheck >= REVALIDATE_BYTES)
        await this.revalidate();
      return n;
    } catch (err) {
      const e = asDiskError(err, `${this.parts.describe}:${this.path}`);
      // A file the client rewrote, or one too costly to read, is not a failing disk: the
      // transfer fails, the disk stays connected and counts no read error (an alert
      // watches that counter).
      if (e instanceof BudgetExceededError) this.parts.onOverBudget?.(e.budget);
      else if (e.code !== NativeErrorCode.FileChanged) this.parts.onReadError?.();
      throw e;
    }
  }

  private async revalidate(): Promise<void> {
    this.sinceCheck = 0;
    const now = await this.fs.refresh(this.node, this.parts.disk.begin(this.parts.budget));
    if (now !== this.node.fingerprint) {
      throw diskError(
        NativeErrorCode.FileChanged,
        'other',
        `${this.parts.describe}:${this.path} changed on the disk during the transfer`,
      );
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

export class NativeDiskSession implements DiskSession {
  readonly backend = 'native';
  private closed = false;

  constructor(private readonly parts: NativeSessionParts) {}

  get healthy(): boolean {
    return !this.closed && this.parts.client.healthy;
  }

  /** Cache and NBD counters, for status pages and the benchmark. */
  get stats() {
    return {
      ...this.parts.disk.stats,
      cachedBytes: this.parts.disk.cachedByteCount,
      reconnects: this.parts.client.reconnects,
    };
  }

  /** The virtual FS itself, for listings (tests, status). */
  get vfs(): VirtualFs {
    return this.parts.vfs;
  }

  /** A read context with no limits (walking the whole tree in tests and tools). */
  unbudgeted(): ReadContext {
    return { epoch: this.parts.disk.newEpoch(), budget: WorkBudget.unlimited() };
  }

  async open(path: string, signal: AbortSignal): Promise<DiskOpenResult> {
    if (this.closed)
      throw diskError(NativeErrorCode.Closed, 'other', `${this.parts.describe}: session closed`);
    signal.throwIfAborted();
    const ctx = this.parts.disk.begin(this.parts.budget, signal);
    let r;
    try {
      r = await this.parts.vfs.resolve(path, ctx);
    } catch (err) {
      const e = asDiskError(err, `${this.parts.describe}:${path}`);
      let reason: string;
      if (e instanceof BudgetExceededError) {
        this.parts.onOverBudget?.(e.budget);
        reason = budgetRefusalReason(e.budget);
      } else if (e.reason === 'corrupt') reason = DISK_CORRUPT_REASON;
      else throw e;
      // The request's own log line has the reason; this one says what on the disk caused it.
      this.parts.logger?.warn(
        { path, reason, code: e.code, err: e.message, spent: ctx.budget.usage },
        'Disk open refused',
      );
      return { status: 'refused', reason };
    }
    if (r.status !== 'found') return r;
    if (r.node.kind === 'dir') return { status: 'refused', reason: 'is a directory' };
    if (r.node.kind !== 'file') return { status: 'refused', reason: notRegularReason(r.node.kind) };
    return {
      status: 'found',
      file: new NativeFile(this.parts, r.fs, r.node, ctx.epoch, r.path),
      path: r.path,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.parts.client.close();
  }
}
