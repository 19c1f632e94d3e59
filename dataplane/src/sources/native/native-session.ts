/**
 * A disk read natively: the DiskSession for backend 'native'. Every open takes a new
 * cache epoch, so it resolves the path against the disk as it is now (a kernel replaced
 * by the client is served new on its next boot). A file read to its end, or every
 * REVALIDATE_BYTES, has its metadata read again: if it changed, the read rejects with
 * RTFTP_ERR_NATIVE_FILE_CHANGED instead of serving a torn file.
 */
import type { DiskOpenResult, DiskSession } from '../disk-session.ts';
import type { OpenedFile } from '../source.ts';
import type { CachedDisk } from './block-cache.ts';
import type { NbdClient } from './nbd-client.ts';
import { NativeErrorCode, asDiskError, diskError } from './errors.ts';
import type { Filesystem, FsNode } from './filesystem.ts';
import type { VirtualFs } from './virtual-fs.ts';

export const REVALIDATE_BYTES = 8 * 1024 * 1024;

export interface NativeSessionParts {
  client: NbdClient;
  disk: CachedDisk;
  vfs: VirtualFs;
  describe: string;
  onReadError?: () => void;
}

class NativeFile implements OpenedFile {
  private sinceCheck = 0;
  private closed = false;

  constructor(
    private readonly parts: NativeSessionParts,
    private readonly fs: Filesystem,
    private readonly node: FsNode,
    private readonly epoch: number,
    private readonly path: string,
  ) {}

  get size(): number {
    return this.node.size;
  }

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (this.closed) throw diskError(NativeErrorCode.Closed, 'other', `${this.path}: file closed`);
    const n = Math.max(0, Math.min(length, this.node.size - position));
    if (n === 0) return 0;
    try {
      await this.fs.readInto(this.node, position, n, buf, offset, this.epoch);
      this.sinceCheck += n;
      if (position + n >= this.node.size || this.sinceCheck >= REVALIDATE_BYTES)
        await this.revalidate();
      return n;
    } catch (err) {
      const e = asDiskError(err, `${this.parts.describe}:${this.path}`);
      // A file the client rewrote is not a failing disk: the transfer fails, the disk
      // stays connected and counts no read error (an alert watches that counter).
      if (e.code !== NativeErrorCode.FileChanged) this.parts.onReadError?.();
      throw e;
    }
  }

  private async revalidate(): Promise<void> {
    this.sinceCheck = 0;
    const now = await this.fs.refresh(this.node, this.parts.disk.newEpoch());
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

  newEpoch(): number {
    return this.parts.disk.newEpoch();
  }

  async open(path: string, signal: AbortSignal): Promise<DiskOpenResult> {
    if (this.closed)
      throw diskError(NativeErrorCode.Closed, 'other', `${this.parts.describe}: session closed`);
    signal.throwIfAborted();
    const epoch = this.parts.disk.newEpoch();
    let r;
    try {
      r = await this.parts.vfs.resolve(path, epoch);
    } catch (err) {
      throw asDiskError(err, `${this.parts.describe}:${path}`);
    }
    if (r.status !== 'found') return r;
    if (r.node.kind === 'dir') return { status: 'refused', reason: 'is a directory' };
    if (r.node.kind !== 'file') return { status: 'refused', reason: 'not a regular file' };
    return {
      status: 'found',
      file: new NativeFile(this.parts, r.fs, r.node, epoch, r.path),
      path: r.path,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.parts.client.close();
  }
}
