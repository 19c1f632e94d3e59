/**
 * MBR and GPT partition tables, numbered as Linux (and so libguestfs) numbers them:
 * partition N is /dev/sdaN. MBR: primaries 1–4 by slot, logical partitions from 5 in
 * chain order. GPT: entry slot + 1. Partition 0 (the whole disk) is not in the list.
 * Tables are read once per connection; every structure is bounds- and loop-checked.
 */
import { crc32 } from 'node:zlib';
import type { BlockReader, ReadContext } from './block-cache.ts';
import { check, corrupt } from './errors.ts';

export const SECTOR = 512;
const MAX_LOGICAL = 128;
const MAX_GPT_ENTRY_BYTES = 1024 * 1024;
const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);
const GPT_PROTECTIVE = 0xee;

export interface Partition {
  number: number;
  /** Byte offset and length on the disk. */
  start: number;
  size: number;
  scheme: 'mbr' | 'gpt';
  /** An MBR extended partition: a container, never a filesystem. */
  extended: boolean;
}

interface MbrEntry {
  type: number;
  lbaStart: number;
  sectors: number;
}

function mbrEntries(sector: Buffer): MbrEntry[] {
  const out: MbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const at = 446 + 16 * i;
    out.push({
      type: sector[at + 4]!,
      lbaStart: sector.readUInt32LE(at + 8),
      sectors: sector.readUInt32LE(at + 12),
    });
  }
  return out;
}

const hasSignature = (sector: Buffer) => sector[510] === 0x55 && sector[511] === 0xaa;

/** Reads the partition table; an empty list when the disk has none. */
export async function readPartitionTable(
  disk: BlockReader,
  ctx: ReadContext,
): Promise<Partition[]> {
  if (disk.size < SECTOR) return [];
  const mbr = await disk.read(0, SECTOR, ctx);
  if (!hasSignature(mbr)) return [];
  const entries = mbrEntries(mbr);
  const parts = entries.some((e) => e.type === GPT_PROTECTIVE)
    ? await readGpt(disk, ctx)
    : await readMbr(disk, entries, ctx);
  checkLayout(parts, disk.size);
  return parts;
}

async function readMbr(
  disk: BlockReader,
  entries: MbrEntry[],
  ctx: ReadContext,
): Promise<Partition[]> {
  const parts: Partition[] = [];
  let extended: MbrEntry | undefined;
  entries.forEach((e, i) => {
    if (e.type === 0 || e.sectors === 0) return;
    const isExt = EXTENDED_TYPES.has(e.type);
    if (isExt) {
      check(extended === undefined, 'MBR has more than one extended partition');
      extended = e;
    }
    parts.push({
      number: i + 1,
      start: e.lbaStart * SECTOR,
      size: e.sectors * SECTOR,
      scheme: 'mbr',
      extended: isExt,
    });
  });
  if (!extended) return parts;
  // Each EBR holds one logical partition (relative to the EBR) and a link to the next EBR
  // (relative to the extended partition). Hostile chains loop or never end: bounded.
  const seen = new Set<number>();
  let ebr = extended.lbaStart;
  let number = 5;
  while (ebr !== 0) {
    check(!seen.has(ebr), `the extended partition's EBR chain loops at sector ${ebr}`);
    check(seen.size < MAX_LOGICAL, `more than ${MAX_LOGICAL} logical partitions`);
    seen.add(ebr);
    check((ebr + 1) * SECTOR <= disk.size, `EBR at sector ${ebr} lies outside the disk`);
    const sector = await disk.read(ebr * SECTOR, SECTOR, ctx);
    check(hasSignature(sector), `EBR at sector ${ebr} has no 55AA signature`);
    const [logical, link] = mbrEntries(sector) as [MbrEntry, MbrEntry];
    if (logical.type !== 0 && logical.sectors !== 0) {
      parts.push({
        number: number++,
        start: (ebr + logical.lbaStart) * SECTOR,
        size: logical.sectors * SECTOR,
        scheme: 'mbr',
        extended: false,
      });
    }
    ebr = link.type !== 0 && link.sectors !== 0 ? extended.lbaStart + link.lbaStart : 0;
  }
  return parts;
}

async function readGptHeader(
  disk: BlockReader,
  lba: number,
  ctx: ReadContext,
): Promise<Buffer | null> {
  if ((lba + 1) * SECTOR > disk.size) return null;
  const h = await disk.read(lba * SECTOR, SECTOR, ctx);
  if (h.toString('latin1', 0, 8) !== 'EFI PART') return null;
  const size = h.readUInt32LE(12);
  if (size < 92 || size > SECTOR) return null;
  const copy = Buffer.from(h.subarray(0, size));
  const stored = copy.readUInt32LE(16);
  copy.writeUInt32LE(0, 16);
  return crc32(copy) === stored ? h : null;
}

async function readGpt(disk: BlockReader, ctx: ReadContext): Promise<Partition[]> {
  const lastLba = Math.floor(disk.size / SECTOR) - 1;
  // The backup header at the last sector stands in when the primary is damaged.
  const header = (await readGptHeader(disk, 1, ctx)) ?? (await readGptHeader(disk, lastLba, ctx));
  if (!header) throw corrupt('GPT header missing or its CRC does not match (primary and backup)');
  const entriesLba = Number(header.readBigUInt64LE(72));
  const count = header.readUInt32LE(80);
  const entrySize = header.readUInt32LE(84);
  check(
    entrySize >= 128 && entrySize % 8 === 0 && entrySize <= 4096,
    `GPT entry size ${entrySize}`,
  );
  const bytes = count * entrySize;
  check(bytes <= MAX_GPT_ENTRY_BYTES, `GPT claims ${count} entries of ${entrySize} bytes`);
  check(entriesLba * SECTOR + bytes <= disk.size, 'GPT entries lie outside the disk');
  const table = await disk.read(entriesLba * SECTOR, bytes, ctx);
  check(crc32(table) === header.readUInt32LE(88), 'GPT partition entries CRC does not match');
  const parts: Partition[] = [];
  for (let i = 0; i < count; i++) {
    const e = table.subarray(i * entrySize, (i + 1) * entrySize);
    if (e.subarray(0, 16).every((b) => b === 0)) continue;
    const first = Number(e.readBigUInt64LE(32));
    const last = Number(e.readBigUInt64LE(40));
    check(last >= first, `GPT partition ${i + 1} ends before it starts`);
    parts.push({
      number: i + 1,
      start: first * SECTOR,
      size: (last - first + 1) * SECTOR,
      scheme: 'gpt',
      extended: false,
    });
  }
  return parts;
}

/** Every partition inside the disk and none overlapping another (logicals sit in their extended). */
function checkLayout(parts: Partition[], diskSize: number): void {
  for (const p of parts) {
    check(
      Number.isSafeInteger(p.start + p.size) && p.start + p.size <= diskSize && p.start > 0,
      `partition ${p.number} (${p.start}+${p.size} bytes) lies outside the ${diskSize}-byte disk`,
    );
  }
  const data = parts.filter((p) => !p.extended).sort((a, b) => a.start - b.start);
  for (let i = 1; i < data.length; i++) {
    const a = data[i - 1]!;
    const b = data[i]!;
    check(a.start + a.size <= b.start, `partitions ${a.number} and ${b.number} overlap`);
  }
  const ext = parts.find((p) => p.extended);
  for (const p of parts) {
    if (p.number < 5 || !ext) continue;
    check(
      p.start >= ext.start && p.start + p.size <= ext.start + ext.size,
      `logical partition ${p.number} lies outside its extended partition`,
    );
  }
}
