/**
 * Tiny disk images built byte by byte in memory, for the unit tests (nothing installed
 * needed): a FAT12 volume with long names, an ext2 (block map) or ext4-style (extents)
 * volume with directories and fast symlinks, and MBR / GPT tables around them. They
 * follow the on-disk formats the readers parse, no more.
 */
import { crc32 } from 'node:zlib';
import type { RawDisk } from './block-cache.ts';

export interface MemoryEntry {
  /** Relative path, '/'-separated. */
  path: string;
  content?: Buffer;
  dir?: boolean;
  symlink?: string;
}

/** A RawDisk over a Buffer (copies nothing: tests may mutate the buffer between reads). */
export function memoryDisk(buf: Buffer): RawDisk {
  return {
    size: buf.length,
    read: async (offset, length) => Buffer.from(buf.subarray(offset, offset + length)),
    readInto: async (offset, length, dst, dstOffset) => {
      buf.copy(dst, dstOffset, offset, offset + length);
    },
  };
}

interface TreeDir {
  files: Map<string, TreeDir | MemoryEntry>;
}

function tree(entries: MemoryEntry[]): TreeDir {
  const root: TreeDir = { files: new Map() };
  for (const e of entries) {
    const parts = e.path.split('/').filter(Boolean);
    let dir = root;
    for (const [i, p] of parts.entries()) {
      const last = i === parts.length - 1;
      if (last && !e.dir) dir.files.set(p, e);
      else {
        let next = dir.files.get(p);
        if (!next || !('files' in next)) dir.files.set(p, (next = { files: new Map() }));
        dir = next;
      }
    }
  }
  return root;
}

// ---- FAT12: 512-byte sectors, 1 sector per cluster, 1024 sectors -------------------------
const FAT_SECTORS = 1024;
const FAT_ROOT_ENTRIES = 64;

export function buildFat12(entries: MemoryEntry[]): Buffer {
  const img = Buffer.alloc(FAT_SECTORS * 512);
  const fatSectors = 3;
  const rootOffset = (1 + 2 * fatSectors) * 512;
  const dataOffset = rootOffset + FAT_ROOT_ENTRIES * 32;
  img.write('\xeb\x3c\x90mkfs.fat', 0, 'latin1');
  img.writeUInt16LE(512, 11);
  img[13] = 1;
  img.writeUInt16LE(1, 14);
  img[16] = 2;
  img.writeUInt16LE(FAT_ROOT_ENTRIES, 17);
  img.writeUInt16LE(FAT_SECTORS, 19);
  img[21] = 0xf8;
  img.writeUInt16LE(fatSectors, 22);
  img.writeUInt16LE(0xaa55, 510);
  let nextCluster = 2;
  let shortId = 0;
  const fat = new Map<number, number>([
    [0, 0xff8],
    [1, 0xfff],
  ]);
  const alloc = (bytes: number): number => {
    const count = Math.max(1, Math.ceil(bytes / 512));
    const first = nextCluster;
    for (let i = 0; i < count; i++) fat.set(first + i, i === count - 1 ? 0xfff : first + i + 1);
    nextCluster += count;
    return first;
  };
  const entry = (name: string, attr: number, cluster: number, size: number): Buffer[] => {
    const short = Buffer.from(`N${String(++shortId).padStart(7, '0')}   `, 'latin1');
    let sum = 0;
    for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + short[i]!) & 0xff;
    const units = [...name].map((c) => c.charCodeAt(0)).concat([0]);
    while (units.length % 13) units.push(0xffff);
    const out: Buffer[] = [];
    const count = units.length / 13;
    for (let seq = count; seq >= 1; seq--) {
      const e = Buffer.alloc(32);
      e[0] = seq | (seq === count ? 0x40 : 0);
      e[11] = 0x0f;
      e[13] = sum;
      const part = units.slice((seq - 1) * 13, seq * 13);
      const at = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
      part.forEach((u, i) => e.writeUInt16LE(u, at[i]!));
      out.push(e);
    }
    const s = Buffer.alloc(32);
    short.copy(s, 0);
    s[11] = attr;
    s.writeUInt16LE(cluster, 26);
    s.writeUInt32LE(size, 28);
    out.push(s);
    return out;
  };
  const writeDir = (dir: TreeDir, self: number, parent: number): Buffer => {
    const rows: Buffer[] = [];
    if (self !== 0) {
      for (const [n, c] of [
        ['.', self],
        ['..', parent],
      ] as const) {
        const e = Buffer.alloc(32, 0x20, 'latin1');
        e.write(n, 0, 'latin1');
        e.fill(0, 11);
        e[11] = 0x10;
        e.writeUInt16LE(c, 26);
        rows.push(e);
      }
    }
    for (const [name, child] of dir.files) {
      if ('files' in child) {
        const bytes =
          (2 +
            [...child.files.keys()].reduce((a, n) => a + 1 + Math.ceil((n.length + 1) / 13), 0)) *
          32;
        const c = alloc(bytes);
        const body = writeDir(child, c, self);
        body.copy(img, dataOffset + (c - 2) * 512);
        rows.push(...entry(name, 0x10, c, 0));
      } else {
        const content = child.content ?? Buffer.alloc(0);
        const c = content.length ? alloc(content.length) : 0;
        content.copy(img, dataOffset + (c - 2) * 512);
        rows.push(...entry(name, 0x20, c, content.length));
      }
    }
    return Buffer.concat(rows);
  };
  writeDir(tree(entries), 0, 0).copy(img, rootOffset);
  for (let copy = 0; copy < 2; copy++) {
    const base = 512 + copy * fatSectors * 512;
    for (const [n, v] of fat) {
      const at = base + Math.floor(n * 1.5);
      const old = img.readUInt16LE(at);
      img.writeUInt16LE(n & 1 ? (old & 0x000f) | (v << 4) : (old & 0xf000) | v, at);
    }
  }
  return img;
}

// ---- ext2 / ext4-style: 1 KiB blocks, one group -------------------------------------------
const EXT_BLOCKS = 1024;
const EXT_INODES = 64;
const INODE_TABLE = 5;

export function buildExt(entries: MemoryEntry[], opts: { extents?: boolean } = {}): Buffer {
  const img = Buffer.alloc(EXT_BLOCKS * 1024);
  const sb = 1024;
  img.writeUInt32LE(EXT_INODES, sb);
  img.writeUInt32LE(EXT_BLOCKS, sb + 4);
  img.writeUInt32LE(1, sb + 20);
  img.writeUInt32LE(8192, sb + 32);
  img.writeUInt32LE(EXT_INODES, sb + 40);
  img.writeUInt16LE(0xef53, sb + 56);
  img.writeUInt32LE(1, sb + 76);
  img.writeUInt32LE(11, sb + 84);
  img.writeUInt16LE(128, sb + 88);
  img.writeUInt32LE(0x2 | (opts.extents ? 0x40 : 0), sb + 96);
  img.writeUInt32LE(3, 2048);
  img.writeUInt32LE(4, 2048 + 4);
  img.writeUInt32LE(INODE_TABLE, 2048 + 8);
  let nextBlock = INODE_TABLE + (EXT_INODES * 128) / 1024;
  let nextInode = 11;
  const inodeAt = (ino: number) => INODE_TABLE * 1024 + (ino - 1) * 128;
  const writeData = (ino: number, data: Buffer) => {
    const at = inodeAt(ino);
    const count = Math.ceil(data.length / 1024);
    const first = nextBlock;
    nextBlock += count + (count > 12 && !opts.extents ? 1 : 0);
    data.copy(img, first * 1024);
    if (opts.extents) {
      img.writeUInt32LE(img.readUInt32LE(at + 32) | 0x80000, at + 32);
      img.writeUInt16LE(0xf30a, at + 40);
      img.writeUInt16LE(count ? 1 : 0, at + 42);
      img.writeUInt16LE(4, at + 44);
      img.writeUInt32LE(0, at + 52);
      img.writeUInt16LE(count, at + 56);
      img.writeUInt32LE(first, at + 60);
      return;
    }
    for (let i = 0; i < Math.min(count, 12); i++) img.writeUInt32LE(first + i, at + 40 + 4 * i);
    if (count > 12) {
      const ind = first + count;
      img.writeUInt32LE(ind, at + 40 + 48);
      for (let i = 12; i < count; i++) img.writeUInt32LE(first + i, ind * 1024 + (i - 12) * 4);
    }
  };
  const setInode = (ino: number, mode: number, size: number) => {
    const at = inodeAt(ino);
    img.writeUInt16LE(mode, at);
    img.writeUInt32LE(size, at + 4);
    img.writeUInt16LE(1, at + 26);
  };
  const writeDir = (dir: TreeDir, self: number, parent: number) => {
    const rows: [string, number, number][] = [
      ['.', self, 2],
      ['..', parent, 2],
    ];
    for (const [name, child] of dir.files) {
      const ino = nextInode++;
      if ('files' in child) {
        writeDir(child, ino, self);
        rows.push([name, ino, 2]);
      } else if (child.symlink !== undefined) {
        const target = Buffer.from(child.symlink);
        setInode(ino, 0xa1ff, target.length);
        if (target.length < 60) target.copy(img, inodeAt(ino) + 40);
        else writeData(ino, target);
        rows.push([name, ino, 7]);
      } else {
        const content = child.content ?? Buffer.alloc(0);
        setInode(ino, 0x81a4, content.length);
        if (content.length) writeData(ino, content);
        rows.push([name, ino, 1]);
      }
    }
    const block = Buffer.alloc(1024);
    let at = 0;
    rows.forEach(([name, ino, type], i) => {
      const nameBytes = Buffer.from(name);
      const rec = i === rows.length - 1 ? 1024 - at : (8 + nameBytes.length + 3) & ~3;
      block.writeUInt32LE(ino, at);
      block.writeUInt16LE(rec, at + 4);
      block[at + 6] = nameBytes.length;
      block[at + 7] = type;
      nameBytes.copy(block, at + 8);
      at += rec;
    });
    setInode(self, 0x41ed, 1024);
    writeData(self, block);
  };
  writeDir(tree(entries), 2, 2);
  return img;
}

// ---- partition tables -----------------------------------------------------------------------
export interface MemoryPartition {
  /** Start and length in 512-byte sectors. */
  start: number;
  sectors: number;
  type?: number;
}

export function mbrSector(parts: (MemoryPartition | null)[]): Buffer {
  const s = Buffer.alloc(512);
  parts.forEach((p, i) => {
    if (!p) return;
    const at = 446 + 16 * i;
    s[at + 4] = p.type ?? 0x83;
    s.writeUInt32LE(p.start, at + 8);
    s.writeUInt32LE(p.sectors, at + 12);
  });
  s.writeUInt16LE(0xaa55, 510);
  return s;
}

/** A GPT (protective MBR, header with CRCs, 128 entries) written into `disk`. */
export function writeGpt(disk: Buffer, parts: (MemoryPartition | null)[]): void {
  mbrSector([{ start: 1, sectors: disk.length / 512 - 1, type: 0xee }]).copy(disk, 0);
  const entries = Buffer.alloc(128 * 128);
  parts.forEach((p, i) => {
    if (!p) return;
    entries.fill(0x11, i * 128, i * 128 + 16);
    entries.writeBigUInt64LE(BigInt(p.start), i * 128 + 32);
    entries.writeBigUInt64LE(BigInt(p.start + p.sectors - 1), i * 128 + 40);
  });
  entries.copy(disk, 2 * 512);
  const h = Buffer.alloc(92);
  h.write('EFI PART', 0, 'latin1');
  h.writeUInt32LE(0x10000, 8);
  h.writeUInt32LE(92, 12);
  h.writeBigUInt64LE(1n, 24);
  h.writeBigUInt64LE(2n, 72);
  h.writeUInt32LE(128, 80);
  h.writeUInt32LE(128, 84);
  h.writeUInt32LE(crc32(entries), 88);
  h.writeUInt32LE(crc32(h), 16);
  h.copy(disk, 512);
}
