/** For unit tests: an in-memory disk mounted as connectNative mounts an NBD one. */
import { CachedDisk } from './block-cache.ts';
import { mountFilesystems } from './connect-native.ts';
import { memoryDisk } from './memory-images.ts';
import { readBytes } from './filesystem.ts';
import type { VirtualFs } from './virtual-fs.ts';

export async function mountMemory(
  image: Buffer,
  mounts: { partition: number; mountpoint: string }[] = [{ partition: 0, mountpoint: '/' }],
): Promise<{ vfs: VirtualFs; disk: CachedDisk }> {
  const disk = new CachedDisk(memoryDisk(image));
  return { vfs: await mountFilesystems(disk, mounts, 'memory'), disk };
}

/** The whole content of the file at `path`, or the resolve status when it is not a file. */
export async function readWhole(
  vfs: VirtualFs,
  disk: CachedDisk,
  path: string,
): Promise<Buffer | string> {
  const ctx = disk.begin();
  const r = await vfs.resolve(path, ctx);
  if (r.status !== 'found') return r.status;
  if (r.node.kind !== 'file') return r.node.kind;
  return readBytes(r.fs, r.node, 0, r.node.size, ctx);
}
