/**
 * ext2/3/4 reader, read-only, without journal replay: it sees the blocks at their home
 * locations (see docs/native-reader.md for what that means for an uncheckpointed ext4).
 * htree directories are read linearly (their index blocks look like empty entries).
 */
import type { BlockReader, ReadContext } from './block-cache.ts';
import { NativeErrorCode, check, diskError } from './errors.ts';
import { InodeFlag, inlineData, mapBlock, parseInode } from './ext-inode.ts';
import type { ExtNode, ExtVolume } from './ext-inode.ts';
import { MAX_DIRECTORY_BYTES, MAX_RUN_BYTES, readBytes } from './filesystem.ts';
import type { DirEntry, Filesystem, FsNode } from './filesystem.ts';

export const EXT_MAGIC = 0xef53;
const ROOT_INO = 2;
const MAX_SYMLINK = 4096;
const DOT_DOT = Buffer.from('..');

const Incompat = {
  Compression: 0x1,
  Filetype: 0x2,
  Recover: 0x4,
  JournalDev: 0x8,
  MetaBg: 0x10,
  Extents: 0x40,
  Bit64: 0x80,
  Mmp: 0x100,
  FlexBg: 0x200,
  EaInode: 0x400,
  DirData: 0x1000,
  CsumSeed: 0x2000,
  LargeDir: 0x4000,
  InlineData: 0x8000,
  Encrypt: 0x10000,
  Casefold: 0x20000,
} as const;
const SUPPORTED =
  Incompat.Filetype |
  Incompat.Recover |
  Incompat.Extents |
  Incompat.Bit64 |
  Incompat.Mmp |
  Incompat.FlexBg |
  Incompat.EaInode |
  Incompat.CsumSeed |
  Incompat.LargeDir |
  Incompat.InlineData;
const COMPAT_HAS_JOURNAL = 0x4;

export function looksLikeExt(superblock: Buffer): boolean {
  return superblock.length >= 1024 && superblock.readUInt16LE(56) === EXT_MAGIC;
}

/** What kind of ext this is, as blkid names it, and whether the reader handles it. */
export function describeExt(sb: Buffer): { type: string; unsupported: string[] } {
  const incompat = sb.readUInt32LE(96);
  const unsupported = Object.entries(Incompat)
    .filter(([, bit]) => incompat & bit && !(SUPPORTED & bit))
    .map(([name]) => name);
  const unknown = incompat & ~Object.values(Incompat).reduce((a, b) => a | b, 0);
  if (unknown) unsupported.push(`0x${unknown.toString(16)}`);
  const ext4ish =
    incompat & (Incompat.Extents | Incompat.Bit64 | Incompat.FlexBg) || sb.readUInt32LE(100) & ~0x3;
  const type = ext4ish ? 'ext4' : sb.readUInt32LE(92) & COMPAT_HAS_JOURNAL ? 'ext3' : 'ext2';
  return { type, unsupported };
}

export async function openExt(dev: BlockReader, ctx: ReadContext): Promise<Filesystem> {
  check(dev.size >= 2048, 'partition too small for ext');
  const sb = await dev.read(1024, 1024, ctx);
  check(looksLikeExt(sb), 'no ext superblock');
  const { type, unsupported } = describeExt(sb);
  if (unsupported.length) {
    throw diskError(
      NativeErrorCode.UnsupportedFilesystem,
      'unsupported-filesystem',
      `${type} with features the native reader does not read: ${unsupported.join(', ')}`,
    );
  }
  const logBlock = sb.readUInt32LE(24);
  check(logBlock <= 6, `ext block size 2^${10 + logBlock}`);
  const blockSize = 1024 << logBlock;
  const incompat = sb.readUInt32LE(96);
  const bit64 = (incompat & Incompat.Bit64) !== 0;
  const blocks = sb.readUInt32LE(4) + (bit64 ? sb.readUInt32LE(336) * 2 ** 32 : 0);
  const inodeSize = sb.readUInt32LE(76) === 0 ? 128 : sb.readUInt16LE(88);
  const descSize = bit64 ? sb.readUInt16LE(254) : 32;
  const ipg = sb.readUInt32LE(40);
  const bpg = sb.readUInt32LE(32);
  const firstData = sb.readUInt32LE(20);
  check(
    blocks > 0 && blocks * blockSize <= dev.size,
    `ext volume of ${blocks} blocks does not fit the partition`,
  );
  check(
    inodeSize >= 128 && inodeSize <= blockSize && (inodeSize & (inodeSize - 1)) === 0,
    `ext inode size ${inodeSize}`,
  );
  check(
    descSize >= 32 && descSize <= 1024 && (descSize & (descSize - 1)) === 0,
    `ext descriptor size ${descSize}`,
  );
  check(ipg > 0 && bpg > 0 && firstData < blocks, 'ext group geometry is empty');
  const groups = Math.ceil((blocks - firstData) / bpg);
  return new ExtFilesystem({ dev, blockSize, blocks }, type, {
    inodeSize,
    descSize,
    ipg,
    groups,
    inodes: sb.readUInt32LE(0),
    gdtOffset: (firstData + 1) * blockSize,
    filetype: (incompat & Incompat.Filetype) !== 0,
  });
}

interface Layout {
  inodeSize: number;
  descSize: number;
  ipg: number;
  groups: number;
  inodes: number;
  gdtOffset: number;
  filetype: boolean;
}

class ExtFilesystem implements Filesystem {
  constructor(
    private readonly v: ExtVolume,
    readonly type: string,
    private readonly l: Layout,
  ) {}

  private async inode(ino: number, ctx: ReadContext): Promise<ExtNode> {
    check(ino >= 1 && ino <= this.l.inodes, `inode number ${ino} out of range`);
    const group = Math.floor((ino - 1) / this.l.ipg);
    check(group < this.l.groups, `inode ${ino} in group ${group} of ${this.l.groups}`);
    const desc = await this.v.dev.read(
      this.l.gdtOffset + group * this.l.descSize,
      this.l.descSize,
      ctx,
    );
    const table =
      desc.readUInt32LE(8) + (this.l.descSize >= 64 ? desc.readUInt32LE(0x28) * 2 ** 32 : 0);
    const offset = table * this.v.blockSize + ((ino - 1) % this.l.ipg) * this.l.inodeSize;
    check(
      table > 0 && offset + this.l.inodeSize <= this.v.blocks * this.v.blockSize,
      `inode table of group ${group} outside the volume`,
    );
    return parseInode(ino, await this.v.dev.read(offset, this.l.inodeSize, ctx));
  }

  root(ctx: ReadContext): Promise<FsNode> {
    return this.inode(ROOT_INO, ctx);
  }

  /**
   * Calls `visit` for each directory entry (inode ≠ 0) with the bytes of its name, until it
   * returns true. Every entry looked at, deleted ones included, is spent from the budget.
   */
  private async scan(
    dir: ExtNode,
    ctx: ReadContext,
    visit: (block: Buffer, nameAt: number, nameLen: number, ino: number) => boolean,
  ): Promise<void> {
    check(dir.kind === 'dir', `inode ${dir.ino} is not a directory`);
    check(dir.size <= MAX_DIRECTORY_BYTES, `directory inode ${dir.ino} claims ${dir.size} bytes`);
    // Entries are spent once per block (a block holds at most a few thousand).
    const parse = (block: Buffer): boolean => {
      let seen = 0;
      let found = false;
      for (let at = 0; at + 8 <= block.length && !found;) {
        seen++;
        const ino = block.readUInt32LE(at);
        const recLen = block.readUInt16LE(at + 4);
        const nameLen = this.l.filetype ? block[at + 6]! : block.readUInt16LE(at + 6);
        check(
          recLen >= 8 && recLen % 4 === 0 && at + recLen <= block.length,
          `directory inode ${dir.ino}: bad entry length`,
        );
        check(8 + nameLen <= recLen, `directory inode ${dir.ino}: name overflows its entry`);
        found = ino !== 0 && visit(block, at + 8, nameLen, ino);
        at += recLen;
      }
      ctx.budget.spend('directory-entries', seen);
      return found;
    };
    if (dir.flags & InodeFlag.InlineData) {
      const data = inlineData(dir);
      // Inline directories start with the parent's inode number instead of "." and "..".
      if (visit(DOT_DOT, 0, 2, data.readUInt32LE(0))) return;
      const body = data.subarray(4, Math.max(4, Math.min(data.length, dir.size)));
      if (body.length >= 8) parse(body);
      return;
    }
    const bs = this.v.blockSize;
    const count = Math.ceil(dir.size / bs);
    for (let lblk = 0; lblk < count;) {
      const run = await mapBlock(this.v, dir, lblk, count - lblk, ctx);
      if (run.kind === 'zero') {
        lblk += run.count;
        continue;
      }
      for (let k = 0; k < run.count; k++) {
        if (parse(await this.v.dev.read((run.pblk + k) * bs, bs, ctx))) return;
      }
      lblk += run.count;
    }
  }

  async lookup(dir: FsNode, name: string, ctx: ReadContext): Promise<FsNode | null> {
    // Compared as bytes, as the kernel compares names: no decoding per entry.
    const want = Buffer.from(name, 'utf8');
    let found = 0;
    await this.scan(dir as ExtNode, ctx, (block, at, len, ino) => {
      if (len !== want.length || want.compare(block, at, at + len) !== 0) return false;
      found = ino;
      return true;
    });
    return found ? this.inode(found, ctx) : null;
  }

  async list(dir: FsNode, ctx: ReadContext): Promise<DirEntry[]> {
    const found: [string, number][] = [];
    await this.scan(dir as ExtNode, ctx, (block, at, len, ino) => {
      const n = block.toString('utf8', at, at + len);
      if (n !== '.' && n !== '..') found.push([n, ino]);
      return false;
    });
    const out: DirEntry[] = [];
    for (const [name, ino] of found) out.push({ name, node: await this.inode(ino, ctx) });
    return out;
  }

  async readlink(link: FsNode, ctx: ReadContext): Promise<string> {
    const node = link as ExtNode;
    check(node.kind === 'symlink' && node.size <= MAX_SYMLINK, `inode ${node.ino}: bad symlink`);
    if (node.flags & InodeFlag.InlineData) return inlineData(node).toString('utf8', 0, node.size);
    // Kernel rule (ext4_inode_is_fast_symlink): targets under 60 bytes live in i_block.
    if (node.size < 60) return node.iblock.toString('utf8', 0, node.size);
    return (await readBytes(this, node, 0, node.size, ctx)).toString('utf8');
  }

  async readInto(
    file: FsNode,
    position: number,
    length: number,
    dst: Buffer,
    dstOffset: number,
    ctx: ReadContext,
  ): Promise<number> {
    const node = file as ExtNode;
    const end = Math.min(position + length, node.size);
    if (end <= position) return 0;
    if (node.flags & InodeFlag.InlineData) {
      const data = inlineData(node);
      check(node.size <= data.length, `inode ${node.ino}: inline size beyond its data`);
      return data.copy(dst, dstOffset, position, end);
    }
    const bs = this.v.blockSize;
    for (let at = position; at < end;) {
      const lblk = Math.floor(at / bs);
      const within = at - lblk * bs;
      const want = Math.ceil(Math.min(end - lblk * bs, MAX_RUN_BYTES) / bs);
      const run = await mapBlock(this.v, node, lblk, want, ctx);
      const take = Math.min(end - at, run.count * bs - within);
      const to = dstOffset + (at - position);
      if (run.kind === 'zero') dst.fill(0, to, to + take);
      else await this.v.dev.readData(run.pblk * bs + within, take, dst, to);
      at += take;
    }
    return end - position;
  }

  async refresh(node: FsNode, ctx: ReadContext): Promise<string | null> {
    const fresh = await this.inode((node as ExtNode).ino, ctx);
    return fresh.fingerprint;
  }
}
