/**
 * Recognises the filesystem on a partition and opens it with the reader that handles it;
 * anything else is an 'unsupported-filesystem' DiskError, which the disk registry takes
 * as "use libguestfs for this disk" under `backend: auto`.
 */
import type { BlockReader, ReadContext } from './block-cache.ts';
import { NativeErrorCode, diskError } from './errors.ts';
import { looksLikeExt, openExt } from './ext.ts';
import { looksLikeFat, openFat } from './fat.ts';
import type { Filesystem } from './filesystem.ts';

/** Magic numbers of filesystems we do not read, to name them in the error. */
const OTHERS: { name: string; offset: number; magic: string }[] = [
  { name: 'xfs', offset: 0, magic: 'XFSB' },
  { name: 'btrfs', offset: 0x10040, magic: '_BHRfS_M' },
  { name: 'LUKS', offset: 0, magic: 'LUKS\u00ba\u00be' },
  { name: 'swap', offset: 4086, magic: 'SWAPSPACE2' },
  { name: 'iso9660', offset: 0x8001, magic: 'CD001' },
  { name: 'squashfs', offset: 0, magic: 'hsqs' },
  { name: 'LVM2 PV', offset: 0x218, magic: 'LVM2 001' },
  { name: 'ntfs', offset: 3, magic: 'NTFS    ' },
];

export async function openFilesystem(
  dev: BlockReader,
  ctx: ReadContext,
  what: string,
): Promise<Filesystem> {
  const head = await dev.read(0, Math.min(dev.size, 0x10100), ctx);
  if (head.length >= 2048 && looksLikeExt(head.subarray(1024, 2048))) return openExt(dev, ctx);
  // NTFS and exFAT boot sectors carry a BPB-like header too: check their OEM names first.
  const oem = head.toString('latin1', 3, 11);
  if (oem !== 'NTFS    ' && oem !== 'EXFAT   ' && looksLikeFat(head)) return openFat(dev, ctx);
  const known = OTHERS.find(
    (o) =>
      head.length >= o.offset + o.magic.length &&
      head.toString('latin1', o.offset, o.offset + o.magic.length) === o.magic,
  );
  const name = oem === 'EXFAT   ' ? 'exfat' : known?.name;
  throw diskError(
    NativeErrorCode.UnsupportedFilesystem,
    'unsupported-filesystem',
    `${what}: ${name ? `${name} is not read natively` : 'no filesystem the native reader knows (FAT, ext2/3/4)'}`,
  );
}
