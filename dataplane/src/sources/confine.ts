/**
 * Path confinement for local directories — the one function every local source uses.
 * A name that resolves (through symlinks) outside the directory it was looked up in is
 * refused, as is anything that resolves to a `.nbd` config.
 */
import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { basename, join, sep } from 'node:path';
import { NBD_CONFIG_SUFFIX } from '../../../common/src/nbd-config.ts';
import type { OpenedFile } from './source.ts';

export type ConfinedOpen =
  | { status: 'found'; file: OpenedFile; path: string }
  | { status: 'not-found' }
  | { status: 'refused'; reason: string };

const NOT_FOUND = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG']);

function isInside(base: string, p: string): boolean {
  return p === base || p.startsWith(base.endsWith(sep) ? base : base + sep);
}

/** Opens `components` below `baseDir`, confined to it. Never throws for a missing file. */
export async function openConfined(
  baseDir: string,
  components: readonly string[],
): Promise<ConfinedOpen> {
  let realBase: string;
  let real: string;
  try {
    realBase = await realpath(baseDir);
    real = await realpath(join(realBase, ...components));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (NOT_FOUND.has(code)) return { status: 'not-found' };
    if (code === 'EACCES') return { status: 'refused', reason: 'permission denied' };
    throw err;
  }
  if (!isInside(realBase, real))
    return { status: 'refused', reason: 'symlink leaves its directory' };
  if (basename(real).toLowerCase().endsWith(NBD_CONFIG_SUFFIX)) {
    return { status: 'refused', reason: 'config files are never served' };
  }
  let handle;
  try {
    // O_NOFOLLOW: the resolved path must not have become a symlink since realpath.
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (NOT_FOUND.has(code)) return { status: 'not-found' };
    if (code === 'EACCES') return { status: 'refused', reason: 'permission denied' };
    throw err;
  }
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    return { status: 'not-found' };
  }
  let closed = false;
  const file: OpenedFile = {
    size: st.size,
    read: async (buf, offset, length, position) =>
      (await handle.read(buf, offset, length, position)).bytesRead,
    close: async () => {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
  return { status: 'found', file, path: real };
}
