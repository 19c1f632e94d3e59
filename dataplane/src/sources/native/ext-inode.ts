/**
 * ext2/3/4 inodes: parsing, and mapping a file's logical blocks to disk blocks through
 * the extent tree (ext4), the indirect block map (ext2/3) or inline data. Every block
 * number read from disk is checked against the volume; trees are depth-bounded.
 */
import type { BlockReader, ReadContext } from './block-cache.ts';
import { check, corrupt } from './errors.ts';
import type { FsNode, NodeKind } from './filesystem.ts';

export const InodeFlag = {
  Index: 0x1000,
  Extents: 0x80000,
  InlineData: 0x10000000,
  Encrypt: 0x800,
} as const;
const EXTENT_MAGIC = 0xf30a;
const MAX_EXTENT_DEPTH = 5;
const XATTR_MAGIC = 0xea020000;
const XATTR_INDEX_SYSTEM = 7;

export interface ExtNode extends FsNode {
  readonly ino: number;
  readonly flags: number;
  /** The 60 bytes of i_block: extent root, block map, or inline data / fast symlink. */
  readonly iblock: Buffer;
  /** The whole on-disk inode, for in-inode extended attributes (inline data). */
  readonly raw: Buffer;
}

/** Where the bytes of logical block `lblk` and the `count` blocks after it are. */
export type BlockRun =
  { kind: 'mapped'; pblk: number; count: number } | { kind: 'zero'; count: number };

export interface ExtVolume {
  readonly dev: BlockReader;
  readonly blockSize: number;
  readonly blocks: number;
}

function kindOf(mode: number): NodeKind {
  switch (mode & 0xf000) {
    case 0x8000:
      return 'file';
    case 0x4000:
      return 'dir';
    case 0xa000:
      return 'symlink';
    case 0x1000:
      return 'fifo';
    case 0x2000:
    case 0x6000:
      return 'device';
    case 0xc000:
      return 'socket';
    default:
      return 'other';
  }
}

/** Offsets of i_mtime and i_mtime_extra in an ext2/3/4 inode. */
const I_MTIME = 0x10;
const I_MTIME_EXTRA = 0x88;
const I_EXTRA_ISIZE = 0x80;

/**
 * The inode's mtime in ms since the epoch: i_mtime (signed seconds), extended by
 * i_mtime_extra when the inode is large enough to hold it (its low 2 bits are more
 * seconds bits past 2038, the rest nanoseconds).
 */
export function inodeMtimeMs(raw: Buffer): number {
  let seconds = raw.readInt32LE(I_MTIME);
  let nanos = 0;
  if (
    raw.length >= I_MTIME_EXTRA + 4 &&
    128 + raw.readUInt16LE(I_EXTRA_ISIZE) >= I_MTIME_EXTRA + 4
  ) {
    const extra = raw.readUInt32LE(I_MTIME_EXTRA);
    seconds += (extra & 3) * 2 ** 32;
    nanos = extra >>> 2;
  }
  return seconds * 1000 + Math.floor(Math.min(nanos, 999_999_999) / 1e6);
}

export function parseInode(ino: number, raw: Buffer): ExtNode {
  const mode = raw.readUInt16LE(0);
  const size = raw.readUInt32LE(4) + raw.readUInt32LE(108) * 2 ** 32;
  check(Number.isSafeInteger(size), `inode ${ino} claims an absurd size`);
  // Everything that changes when the file does; not atime (0x08) nor the checksum (0x7c),
  // which a reading client rewrites.
  const parts = [raw.subarray(0, 8), raw.subarray(12, 124)];
  if (raw.length >= 0x8c) parts.push(raw.subarray(0x84, 0x8c));
  return {
    ino,
    id: String(ino),
    kind: kindOf(mode),
    size,
    flags: raw.readUInt32LE(32),
    iblock: Buffer.from(raw.subarray(40, 100)),
    raw: Buffer.from(raw),
    fingerprint: `${ino}:${Buffer.concat(parts).toString('hex')}`,
    mtimeMs: inodeMtimeMs(raw),
  };
}

/** The bytes of an inline-data inode: i_block, then the `system.data` in-inode attribute. */
export function inlineData(node: ExtNode): Buffer {
  const extra = node.raw.length > 128 ? node.raw.readUInt16LE(128) : 0;
  const start = 128 + extra;
  let tail: Buffer = Buffer.alloc(0);
  if (extra > 0 && start + 4 <= node.raw.length && node.raw.readUInt32LE(start) === XATTR_MAGIC) {
    const base = start + 4;
    for (let at = base; at + 16 <= node.raw.length;) {
      const nameLen = node.raw[at]!;
      const index = node.raw[at + 1]!;
      if (nameLen === 0 && index === 0 && node.raw.readUInt32LE(at) === 0) break;
      const valueOffs = node.raw.readUInt16LE(at + 2);
      const valueSize = node.raw.readUInt32LE(at + 8);
      const name = node.raw.toString('latin1', at + 16, at + 16 + nameLen);
      if (index === XATTR_INDEX_SYSTEM && name === 'data') {
        check(
          base + valueOffs + valueSize <= node.raw.length,
          `inode ${node.ino}: inline data outside the inode`,
        );
        tail = node.raw.subarray(base + valueOffs, base + valueOffs + valueSize);
        break;
      }
      at += (16 + nameLen + 3) & ~3;
    }
  }
  return Buffer.concat([node.iblock, tail]);
}

function checkBlock(v: ExtVolume, pblk: number, count: number, ino: number): void {
  check(
    pblk > 0 && pblk + count <= v.blocks,
    `inode ${ino} points to blocks ${pblk}+${count}, outside the volume`,
  );
}

/** Maps logical block `lblk` of `node`; `limit` caps the run length (the caller's need). */
export async function mapBlock(
  v: ExtVolume,
  node: ExtNode,
  lblk: number,
  limit: number,
  ctx: ReadContext,
): Promise<BlockRun> {
  if (node.flags & InodeFlag.Extents) return mapExtent(v, node, lblk, limit, ctx);
  return mapIndirect(v, node, lblk, limit, ctx);
}

async function mapExtent(
  v: ExtVolume,
  node: ExtNode,
  lblk: number,
  limit: number,
  ctx: ReadContext,
): Promise<BlockRun> {
  let block = node.iblock;
  let upper = Infinity; // first logical block the current subtree does not cover
  let expectDepth = -1;
  for (let level = 0; ; level++) {
    check(
      level <= MAX_EXTENT_DEPTH,
      `inode ${node.ino}: extent tree deeper than ${MAX_EXTENT_DEPTH}`,
    );
    check(block.readUInt16LE(0) === EXTENT_MAGIC, `inode ${node.ino}: bad extent header`);
    const entries = block.readUInt16LE(2);
    const depth = block.readUInt16LE(6);
    check(12 + entries * 12 <= block.length, `inode ${node.ino}: extent node overflows`);
    check(
      expectDepth < 0 || depth === expectDepth,
      `inode ${node.ino}: extent tree depth mismatch`,
    );
    // Last entry whose first logical block is ≤ lblk.
    let i = -1;
    for (let k = 0; k < entries; k++) {
      if (block.readUInt32LE(12 + k * 12) <= lblk) i = k;
      else break;
    }
    const nextStart = i + 1 < entries ? block.readUInt32LE(12 + (i + 1) * 12) : Infinity;
    upper = Math.min(upper, nextStart);
    if (depth === 0) {
      if (i < 0) return { kind: 'zero', count: Math.max(1, Math.min(limit, upper - lblk)) };
      const at = 12 + i * 12;
      const first = block.readUInt32LE(at);
      let len = block.readUInt16LE(at + 4);
      const uninit = len > 32768;
      if (uninit) len -= 32768;
      const pstart = block.readUInt16LE(at + 6) * 2 ** 32 + block.readUInt32LE(at + 8);
      if (lblk >= first + len)
        return { kind: 'zero', count: Math.max(1, Math.min(limit, upper - lblk)) };
      checkBlock(v, pstart, len, node.ino);
      const count = Math.min(limit, first + len - lblk);
      // Unwritten (preallocated) extents read as zeros, as the kernel reads them.
      return uninit
        ? { kind: 'zero', count }
        : { kind: 'mapped', pblk: pstart + (lblk - first), count };
    }
    if (i < 0) return { kind: 'zero', count: Math.max(1, Math.min(limit, upper - lblk)) };
    const at = 12 + i * 12;
    const child = block.readUInt32LE(at + 4) + block.readUInt16LE(at + 8) * 2 ** 32;
    checkBlock(v, child, 1, node.ino);
    expectDepth = depth - 1;
    block = await v.dev.read(child * v.blockSize, v.blockSize, ctx);
  }
}

async function mapIndirect(
  v: ExtVolume,
  node: ExtNode,
  lblk: number,
  limit: number,
  ctx: ReadContext,
): Promise<BlockRun> {
  const per = v.blockSize / 4;
  const run = (ptrs: Buffer, index: number, end: number): BlockRun => {
    const first = ptrs.readUInt32LE(index * 4);
    let count = 1;
    const max = Math.min(limit, end - index);
    if (first === 0) {
      while (count < max && ptrs.readUInt32LE((index + count) * 4) === 0) count++;
      return { kind: 'zero', count };
    }
    while (count < max && ptrs.readUInt32LE((index + count) * 4) === first + count) count++;
    checkBlock(v, first, count, node.ino);
    return { kind: 'mapped', pblk: first, count };
  };
  if (lblk < 12) return run(node.iblock, lblk, 12);
  let rel = lblk - 12;
  // Levels: single (1 pointer block), double, triple indirect.
  for (let level = 1, span = per; level <= 3; level++, span *= per) {
    if (rel >= span) {
      rel -= span;
      continue;
    }
    let ptr = node.iblock.readUInt32LE((11 + level) * 4);
    let unit = span / per;
    for (let l = level; l >= 1; l--) {
      if (ptr === 0)
        return { kind: 'zero', count: Math.max(1, Math.min(limit, unit - (rel % unit))) };
      checkBlock(v, ptr, 1, node.ino);
      const ptrs = await v.dev.read(ptr * v.blockSize, v.blockSize, ctx);
      const idx = Math.floor(rel / unit);
      if (l === 1) return run(ptrs, idx, per);
      ptr = ptrs.readUInt32LE(idx * 4);
      rel -= idx * unit;
      unit /= per;
    }
  }
  throw corrupt(`inode ${node.ino}: block ${lblk} beyond the triple-indirect map`);
}
