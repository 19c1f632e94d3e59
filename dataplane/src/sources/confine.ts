/**
 * Path confinement for local directories — the one function every local source uses.
 *
 * Decided on what was opened, never on a path checked beforehand (which a concurrent
 * rename could change between the check and the open):
 *  1. open the name with O_PATH: it follows symlinks but opens nothing (no FIFO blocks,
 *     no device driver runs, no read permission needed yet);
 *  2. ask the kernel where that descriptor is (`/proc/self/fd/N`) and what it is (fstat):
 *     it must lie inside the directory's real path, be a regular file, and not be a
 *     `.nbd` config;
 *  3. only then open it for reading, through the same descriptor (`/proc/self/fd/N`
 *     reopens that very inode, not a path), non-blocking.
 * Whatever is renamed meanwhile, the bytes served are those of the inode that was found
 * inside the directory, and the location logged is where that inode is. Anything that
 * cannot be verified (no /proc) is refused: fail closed.
 */
import { constants } from 'node:fs';
import { open, readlink, realpath } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, join, sep } from 'node:path';
import { NBD_CONFIG_SUFFIX } from '../../../common/src/nbd-config.ts';
import { notRegularReason } from './source.ts';
import type { NotRegularKind, OpenedFile } from './source.ts';

export type ConfinedOpen =
  | { status: 'found'; file: OpenedFile; path: string }
  | { status: 'not-found' }
  | { status: 'refused'; reason: string };

/** Linux's O_PATH (node's fs.constants lacks it): a descriptor that only names the inode. */
const O_PATH = 0o10000000;
const NOT_FOUND = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG']);

export const ConfineReason = {
  Outside: 'symlink leaves its directory',
  Config: 'config files are never served',
  Permission: 'permission denied',
  Unverifiable: 'cannot verify where the file is (/proc/self/fd)',
} as const;

function isInside(base: string, p: string): boolean {
  return p === base || p.startsWith(base.endsWith(sep) ? base : base + sep);
}

function kindOf(st: Stats): NotRegularKind | 'file' | 'dir' {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'device';
  if (st.isSocket()) return 'socket';
  return 'other';
}

/** An fs error as the answer it means; rethrows what no request explains. */
function answerFor(err: unknown): ConfinedOpen {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (NOT_FOUND.has(code)) return { status: 'not-found' };
  if (code === 'EACCES' || code === 'EPERM')
    return { status: 'refused', reason: ConfineReason.Permission };
  throw err;
}

/**
 * Where the descriptor's inode is, by the kernel's account. A file deleted since it was
 * opened reads as "<path> (deleted)": the suffix is dropped, the file was there.
 */
async function locationOf(fd: number): Promise<string | null> {
  try {
    return (await readlink(`/proc/self/fd/${fd}`)).replace(/ \(deleted\)$/, '');
  } catch {
    return null;
  }
}

/** Decides on the opened inode: where it is and what it is. Null: serve it. */
async function refusal(
  baseDir: string,
  realBase: string,
  where: string | null,
  st: Stats,
): Promise<ConfinedOpen | null> {
  if (where === null) return { status: 'refused', reason: ConfineReason.Unverifiable };
  // The directory itself may have been swapped (a `default` symlink moved to a new
  // release) between realpath and open: inside its real path as it is now is inside too.
  if (!isInside(realBase, where) && !isInside(await realpath(baseDir).catch(() => ''), where))
    return { status: 'refused', reason: ConfineReason.Outside };
  if (basename(where).toLowerCase().endsWith(NBD_CONFIG_SUFFIX))
    return { status: 'refused', reason: ConfineReason.Config };
  const kind = kindOf(st);
  if (kind === 'dir') return { status: 'not-found' };
  if (kind !== 'file') return { status: 'refused', reason: notRegularReason(kind) };
  return null;
}

/**
 * Opens `components` below `baseDir`, confined to it. Never throws for a missing file.
 * Independent system calls run together (each is a round trip through libuv's pool): the
 * directory's real path with the O_PATH open, the location with the fstat, the close of
 * the O_PATH descriptor with the fstat of the one read from.
 */
export async function openConfined(
  baseDir: string,
  components: readonly string[],
): Promise<ConfinedOpen> {
  const [base, opened] = await Promise.allSettled([
    realpath(baseDir),
    open(join(baseDir, ...components), O_PATH),
  ]);
  if (opened.status === 'rejected') return answerFor(opened.reason);
  const probe = opened.value;
  let handle: FileHandle | undefined;
  let where: string | null = null;
  try {
    if (base.status === 'rejected') return answerFor(base.reason);
    const [st, location] = await Promise.all([probe.stat(), locationOf(probe.fd)]);
    where = location;
    const refused = await refusal(baseDir, base.value, where, st);
    if (refused) return refused;
    // The inode just checked, not the path again: O_NONBLOCK as a second guard (a FIFO
    // or a device never blocks a thread of libuv's pool, whatever it is by now).
    handle = await open(`/proc/self/fd/${probe.fd}`, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return answerFor(err);
  } finally {
    // Every way out but the one below, which closes it alongside the next call.
    if (!handle) await probe.close();
  }
  const reading = handle;
  const [st] = await Promise.all([
    reading.stat().catch(async (err: unknown) => {
      await reading.close();
      throw err;
    }),
    probe.close(),
  ]);
  if (!st.isFile()) {
    await reading.close();
    return { status: 'refused', reason: notRegularReason(kindOf(st) as NotRegularKind) };
  }
  let closed = false;
  const file: OpenedFile = {
    size: st.size,
    mtimeMs: st.mtimeMs,
    read: async (buf, offset, length, position) =>
      (await reading.read(buf, offset, length, position)).bytesRead,
    close: async () => {
      if (closed) return;
      closed = true;
      await reading.close();
    },
  };
  return { status: 'found', file, path: where! };
}
