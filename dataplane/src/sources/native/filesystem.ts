/**
 * What the virtual FS needs from a filesystem reader (FAT, ext). Every call names its
 * ReadContext: the epoch its reads must be at least as fresh as (block-cache.ts) and the
 * budget they are spent from (sources/budget.ts). Nodes are snapshots of on-disk metadata
 * taken at that epoch; `fingerprint` tells whether it changed since.
 */
import type { ReadContext } from './block-cache.ts';

/** 'fifo', 'device' (character or block) and 'socket' are never served; 'other': unknown mode. */
export type NodeKind = 'file' | 'dir' | 'symlink' | 'fifo' | 'device' | 'socket' | 'other';

export interface FsNode {
  readonly kind: NodeKind;
  /** Size in bytes (a symlink: the target's length). */
  readonly size: number;
  /** Identity within its filesystem (inode number, first cluster): finds directory loops. */
  readonly id: string;
  /** The on-disk metadata that, if it changes, means the file changed (not atime). */
  readonly fingerprint: string;
  /** Last modification (ms since the epoch) as the metadata says; absent when invalid. */
  readonly mtimeMs?: number;
}

export interface DirEntry {
  name: string;
  node: FsNode;
}

export interface Filesystem {
  /** 'vfat', 'ext2', 'ext3' or 'ext4', as libguestfs's vfs-type says. */
  readonly type: string;
  root(ctx: ReadContext): Promise<FsNode>;
  /** The entry called `name` in `dir` (case-insensitive on FAT), or null. */
  lookup(dir: FsNode, name: string, ctx: ReadContext): Promise<FsNode | null>;
  /** Every entry of `dir` except `.` and `..` (bounded: hostile directories are refused). */
  list(dir: FsNode, ctx: ReadContext): Promise<DirEntry[]>;
  readlink(link: FsNode, ctx: ReadContext): Promise<string>;
  /**
   * Copies bytes [position, position + length) of a regular file (clipped at its end) into
   * `dst` at `dstOffset`; holes read as zeros. Resolves the count copied.
   */
  readInto(
    file: FsNode,
    position: number,
    length: number,
    dst: Buffer,
    dstOffset: number,
    ctx: ReadContext,
  ): Promise<number>;
  /** The node's metadata read again at `ctx.epoch`: its fingerprint now, or null if gone. */
  refresh(node: FsNode, ctx: ReadContext): Promise<string | null>;
}

/**
 * Largest single disk read of file data (blocks or clusters that follow each other on
 * disk are read together): bounds memory per call.
 */
export const MAX_RUN_BYTES = 1024 * 1024;

/** Largest directory read, in bytes: bounds the work a hostile directory can cause. */
export const MAX_DIRECTORY_BYTES = 32 * 1024 * 1024;

/** The bytes of a file range in a new Buffer (symlink targets, tests). */
export async function readBytes(
  fs: Filesystem,
  file: FsNode,
  position: number,
  length: number,
  ctx: ReadContext,
): Promise<Buffer> {
  const buf = Buffer.alloc(Math.max(0, Math.min(length, file.size - position)));
  const n = await fs.readInto(file, position, buf.length, buf, 0, ctx);
  return buf.subarray(0, n);
}
