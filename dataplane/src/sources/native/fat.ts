/**
 * FAT12/16/32 reader with VFAT long file names, read-only. Names are shown as Linux's vfat
 * shows them (the long name when its checksum matches the short entry, else the short
 * name with the NT lower-case flags applied); lookup is case-insensitive.
 */
import type { BlockReader, ReadContext } from './block-cache.ts';
import { check, corrupt } from './errors.ts';
import { ClusterChain } from './fat-chain.ts';
import { MAX_RUN_BYTES } from './filesystem.ts';
import type { DirEntry, Filesystem, FsNode } from './filesystem.ts';

const Attr = {
  ReadOnly: 0x01,
  Hidden: 0x02,
  System: 0x04,
  Volume: 0x08,
  Dir: 0x10,
  Lfn: 0x0f,
} as const;
const ENTRY = 32;
/** Bytes of FAT read at once while following a chain. */
const FAT_WINDOW = 16 * 1024;

/** A FAT directory holds at most 65536 entries (the spec's limit). */
const MAX_DIR_ENTRIES = 65536;

interface FatNode extends FsNode {
  /** First cluster; 0 for the FAT12/16 root directory region. */
  readonly cluster: number;
  /** Byte offset of the short directory entry (revalidation), -1 for the root. */
  readonly entryOffset: number;
  /** The cluster chain, followed as far as reads needed it. */
  chain?: ClusterChain;
}

interface Geometry {
  bits: 12 | 16 | 32;
  sectorSize: number;
  clusterBytes: number;
  fatOffset: number;
  fatBytes: number;
  rootOffset: number;
  rootEntries: number;
  rootCluster: number;
  dataOffset: number;
  clusters: number;
}

/** True when the boot sector looks like a FAT BPB (checked again, strictly, by openFat). */
export function looksLikeFat(boot: Buffer): boolean {
  if (boot.length < 512 || boot[510] !== 0x55 || boot[511] !== 0xaa) return false;
  const bps = boot.readUInt16LE(11);
  const spc = boot[13]!;
  return (
    [512, 1024, 2048, 4096].includes(bps) && spc > 0 && (spc & (spc - 1)) === 0 && boot[16]! > 0
  );
}

export async function openFat(dev: BlockReader, ctx: ReadContext): Promise<Filesystem> {
  const boot = await dev.read(0, 512, ctx);
  check(looksLikeFat(boot), 'not a FAT boot sector');
  const sectorSize = boot.readUInt16LE(11);
  const spc = boot[13]!;
  const reserved = boot.readUInt16LE(14);
  const fats = boot[16]!;
  const rootEntries = boot.readUInt16LE(17);
  const total = boot.readUInt16LE(19) || boot.readUInt32LE(32);
  const fatSectors = boot.readUInt16LE(22) || boot.readUInt32LE(36);
  check(reserved > 0 && fatSectors > 0 && total > 0, 'FAT BPB has zero-sized regions');
  const rootSectors = Math.ceil((rootEntries * ENTRY) / sectorSize);
  const firstData = reserved + fats * fatSectors + rootSectors;
  check(firstData < total, 'FAT regions are larger than the volume');
  const clusters = Math.floor((total - firstData) / spc);
  const bits = clusters < 4085 ? 12 : clusters < 65525 ? 16 : 32;
  const g: Geometry = {
    bits,
    sectorSize,
    clusterBytes: spc * sectorSize,
    fatOffset: reserved * sectorSize,
    fatBytes: fatSectors * sectorSize,
    rootOffset: (reserved + fats * fatSectors) * sectorSize,
    rootEntries,
    rootCluster: bits === 32 ? boot.readUInt32LE(44) : 0,
    dataOffset: firstData * sectorSize,
    clusters,
  };
  check(g.fatBytes * 8 >= (clusters + 2) * bits, 'the FAT is too small for the cluster count');
  check(
    total * sectorSize <= dev.size,
    `FAT volume of ${total * sectorSize} bytes on a ${dev.size}-byte partition`,
  );
  if (bits === 32)
    check(g.rootCluster >= 2 && g.rootCluster < clusters + 2, 'FAT32 root cluster out of range');
  else check(rootEntries > 0, 'FAT12/16 without root directory entries');
  return new FatFilesystem(dev, g);
}

function shortName(e: Buffer): string {
  let base = e.toString('latin1', 0, 8).replace(/ +$/, '');
  let ext = e.toString('latin1', 8, 11).replace(/ +$/, '');
  if (e[0] === 0x05) base = '\u00e5' + base.slice(1);
  const lcase = e[12]!;
  if (lcase & 0x08) base = base.toLowerCase();
  if (lcase & 0x10) ext = ext.toLowerCase();
  return ext ? `${base}.${ext}` : base;
}

/**
 * The entry's last write time (bytes 22–25: DOS time, then date) in ms since the epoch.
 * FAT keeps local time without a zone; it is read as UTC, as Linux's vfat does with
 * `tz=UTC`. Undefined for a date that is not one (0 on many tools' images).
 */
export function fatWriteTimeMs(e: Buffer): number | undefined {
  const time = e.readUInt16LE(22);
  const date = e.readUInt16LE(24);
  const month = (date >> 5) & 0x0f;
  const day = date & 0x1f;
  const hours = time >> 11;
  const minutes = (time >> 5) & 0x3f;
  const seconds = (time & 0x1f) * 2;
  if (month < 1 || month > 12 || day < 1 || hours > 23 || minutes > 59 || seconds > 59)
    return undefined;
  return Date.UTC(1980 + (date >> 9), month - 1, day, hours, minutes, seconds);
}

function shortChecksum(e: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + e[i]!) & 0xff;
  return sum;
}

function lfnChars(e: Buffer): number[] {
  const out: number[] = [];
  for (const [from, to] of [
    [1, 11],
    [14, 26],
    [28, 32],
  ] as const) {
    for (let i = from; i < to; i += 2) out.push(e.readUInt16LE(i));
  }
  return out;
}

class FatFilesystem implements Filesystem {
  readonly type = 'vfat';
  constructor(
    private readonly dev: BlockReader,
    private readonly g: Geometry,
  ) {}

  private node(e: Buffer, entryOffset: number): FatNode {
    const attr = e[11]!;
    const cluster =
      this.g.bits === 32 ? (e.readUInt16LE(20) << 16) | e.readUInt16LE(26) : e.readUInt16LE(26);
    const dir = (attr & Attr.Dir) !== 0;
    return {
      kind: dir ? 'dir' : 'file',
      size: dir ? 0 : e.readUInt32LE(28),
      cluster: cluster >>> 0,
      id: `c${cluster >>> 0}`,
      entryOffset,
      // Everything but the access date (bytes 18–19), which a reading OS may update.
      fingerprint: Buffer.concat([e.subarray(0, 18), e.subarray(20, 32)]).toString('hex'),
      mtimeMs: fatWriteTimeMs(e),
    };
  }

  async root(): Promise<FsNode> {
    const root: FatNode = {
      kind: 'dir',
      size: 0,
      cluster: this.g.bits === 32 ? this.g.rootCluster : 0,
      entryOffset: -1,
      id: `c${this.g.bits === 32 ? this.g.rootCluster : 0}`,
      fingerprint: 'root',
    };
    return root;
  }

  /** Byte offset of a cluster's FAT entry and the bytes it spans. */
  private entryPlace(cluster: number): [number, number] {
    const { bits, fatOffset } = this.g;
    if (bits === 12) return [fatOffset + Math.floor(cluster * 1.5), 2];
    return [fatOffset + cluster * (bits / 8), bits / 8];
  }

  private decodeEntry(window: Buffer, at: number, cluster: number): number {
    if (this.g.bits === 12) {
      const v = window.readUInt16LE(at);
      return cluster & 1 ? v >> 4 : v & 0xfff;
    }
    if (this.g.bits === 16) return window.readUInt16LE(at);
    return window.readUInt32LE(at) & 0x0fffffff;
  }

  private isEnd(v: number): boolean {
    return v >= (this.g.bits === 12 ? 0xff8 : this.g.bits === 16 ? 0xfff8 : 0x0ffffff8);
  }

  private validCluster(c: number): boolean {
    return c >= 2 && c < this.g.clusters + 2;
  }

  /**
   * The cluster at chain position `index` of the node, or null past the chain's end.
   * The FAT is read a window at a time: following a chain costs one disk read per
   * FAT_WINDOW bytes of FAT, not one per cluster.
   */
  private async clusterAt(node: FatNode, index: number, ctx: ReadContext): Promise<number | null> {
    if (!node.chain) {
      if (node.cluster === 0) return null;
      check(this.validCluster(node.cluster), `first cluster ${node.cluster} out of range`);
      node.chain = new ClusterChain(node.cluster);
    }
    const chain = node.chain;
    const fatEnd = this.g.fatOffset + this.g.fatBytes;
    while (index >= chain.length && !chain.ended) {
      const [windowStart, width] = this.entryPlace(chain.lastCluster);
      const window = await this.dev.read(
        windowStart,
        Math.max(width, Math.min(FAT_WINDOW, fatEnd - windowStart)),
        ctx,
      );
      // Follow the chain as far as this window of the FAT goes, not just to `index`.
      for (;;) {
        const last = chain.lastCluster;
        const [at] = this.entryPlace(last);
        if (at < windowStart || at + width > windowStart + window.length) break;
        const next = this.decodeEntry(window, at - windowStart, last);
        if (this.isEnd(next)) {
          chain.ended = true;
          break;
        }
        check(this.validCluster(next), `FAT chain points to cluster ${next}, outside the volume`);
        chain.append(next);
      }
    }
    return chain.at(index) ?? null;
  }

  private clusterOffset(cluster: number): number {
    return this.g.dataOffset + (cluster - 2) * this.g.clusterBytes;
  }

  /**
   * Calls `visit` with each entry's name (long name if valid, else the 8.3 one), `.` and
   * `..` and volume labels left out, until it returns true. Every 32-byte slot read,
   * long-name and deleted ones included, is spent from the budget.
   */
  private async scan(
    dir: FatNode,
    ctx: ReadContext,
    visit: (name: string, entry: Buffer, offset: number) => boolean,
  ): Promise<void> {
    let lfn: { chars: number[][]; sum: number; next: number } | null = null;
    /** 'end' at the end-of-directory mark, 'found' when `visit` is done, else 'more'. */
    const visitBlock = (block: Buffer, base: number): 'end' | 'found' | 'more' => {
      // Spent per cluster, up front: at most one cluster's slots more than were looked at.
      ctx.budget.spend('directory-entries', Math.floor(block.length / ENTRY));
      for (let at = 0; at + ENTRY <= block.length; at += ENTRY) {
        const e = block.subarray(at, at + ENTRY);
        if (e[0] === 0) return 'end';
        if (e[0] === 0xe5) {
          lfn = null;
          continue;
        }
        const attr = e[11]!;
        if ((attr & 0x3f) === Attr.Lfn) {
          const seq = e[0]! & 0x1f;
          if (e[0]! & 0x40) lfn = { chars: [], sum: e[13]!, next: seq };
          if (lfn && seq === lfn.next && seq > 0 && e[13] === lfn.sum) {
            lfn.chars[seq - 1] = lfnChars(e);
            lfn.next = seq - 1;
          } else lfn = null;
          continue;
        }
        let long: string | null = null;
        const pending = lfn as { chars: number[][]; sum: number; next: number } | null;
        if (pending && pending.next === 0 && pending.sum === shortChecksum(e)) {
          const units = pending.chars.flat();
          const end = units.indexOf(0);
          long = String.fromCharCode(...(end >= 0 ? units.slice(0, end) : units));
        }
        lfn = null;
        if (attr & Attr.Volume) continue;
        const name = long ?? shortName(e);
        if (name === '.' || name === '..') continue;
        if (visit(name, e, base + at)) return 'found';
      }
      return 'more';
    };
    check(dir.cluster !== 0 || dir.entryOffset < 0, 'FAT subdirectory without a first cluster');
    if (dir.cluster === 0) {
      const bytes = this.g.rootEntries * ENTRY;
      visitBlock(await this.dev.read(this.g.rootOffset, bytes, ctx), this.g.rootOffset);
      return;
    }
    const maxClusters = Math.ceil((MAX_DIR_ENTRIES * ENTRY) / this.g.clusterBytes);
    for (let i = 0; ; i++) {
      check(i < maxClusters, 'FAT directory larger than 65536 entries (or its chain loops)');
      const c = await this.clusterAt(dir, i, ctx);
      if (c === null) return;
      const off = this.clusterOffset(c);
      if (visitBlock(await this.dev.read(off, this.g.clusterBytes, ctx), off) !== 'more') return;
    }
  }

  async list(dir: FsNode, ctx: ReadContext): Promise<DirEntry[]> {
    const out: DirEntry[] = [];
    await this.scan(dir as FatNode, ctx, (name, e, offset) => {
      out.push({ name, node: this.node(e, offset) });
      return false;
    });
    return out;
  }

  async lookup(dir: FsNode, name: string, ctx: ReadContext): Promise<FsNode | null> {
    const want = name.toLowerCase();
    let found: FatNode | null = null;
    await this.scan(dir as FatNode, ctx, (n, e, offset) => {
      if (n.toLowerCase() !== want) return false;
      found = this.node(e, offset);
      return true;
    });
    return found;
  }

  async readlink(): Promise<string> {
    throw corrupt('FAT has no symbolic links');
  }

  async readInto(
    file: FsNode,
    position: number,
    length: number,
    dst: Buffer,
    dstOffset: number,
    ctx: ReadContext,
  ): Promise<number> {
    const node = file as FatNode;
    const end = Math.min(position + length, node.size);
    const cb = this.g.clusterBytes;
    for (let at = position; at < end;) {
      const index = Math.floor(at / cb);
      const c = await this.clusterAt(node, index, ctx);
      if (c === null) throw corrupt(`FAT chain ends before the file's ${node.size} bytes`);
      // Clusters that follow each other on disk are read in one request. The chain is
      // kept as runs, so this asks the FAT again only when the run reaches what is known.
      const chain = node.chain!;
      const want = Math.min(Math.ceil((end - index * cb) / cb), Math.ceil(MAX_RUN_BYTES / cb));
      let run = chain.runLength(index);
      while (run < want && index + run === chain.length && !chain.ended) {
        await this.clusterAt(node, index + run, ctx);
        run = chain.runLength(index);
      }
      run = Math.min(run, want);
      const within = at - index * cb;
      const take = Math.min(end - at, run * cb - within);
      await this.dev.readData(
        this.clusterOffset(c) + within,
        take,
        dst,
        dstOffset + (at - position),
      );
      at += take;
    }
    return Math.max(0, end - position);
  }

  async refresh(node: FsNode, ctx: ReadContext): Promise<string | null> {
    const n = node as FatNode;
    if (n.entryOffset < 0) return n.fingerprint;
    const e = await this.dev.read(n.entryOffset, ENTRY, ctx);
    if (e[0] === 0 || e[0] === 0xe5) return null;
    return this.node(e, n.entryOffset).fingerprint;
  }
}
