/**
 * The tree the client's `mounts` make, as libguestfs builds it: filesystems mounted in
 * config order, a later mount hiding what lies under its mountpoint. Paths resolve with
 * symlinks followed inside this tree only: an absolute target starts again at its root,
 * `..` stops at its root (as in a chroot), and hops are spent from the open's budget
 * (sources/budget.ts: 40 by default, Linux's MAXSYMLINKS).
 */
import { check, corrupt } from './errors.ts';
import type { ReadContext } from './block-cache.ts';
import type { Filesystem, FsNode } from './filesystem.ts';

/** Deepest directory a walk descends into. */
export const MAX_WALK_DEPTH = 256;

export interface Mounted {
  /** Absolute, normalised path in the virtual FS. */
  mountpoint: string;
  fs: Filesystem;
}

export type Resolved =
  | { status: 'found'; node: FsNode; fs: Filesystem; path: string }
  | { status: 'not-found' }
  | { status: 'refused'; reason: string };

interface Step {
  /** Absolute path of this node in the virtual FS, kept per step: no join per component. */
  path: string;
  node: FsNode;
  fs: Filesystem;
}

export class VirtualFs {
  constructor(private readonly mounts: readonly Mounted[]) {}

  /** The filesystem mounted last at exactly `path`, if any. */
  private mountAt(path: string): Filesystem | undefined {
    for (let i = this.mounts.length - 1; i >= 0; i--) {
      if (this.mounts[i]!.mountpoint === path) return this.mounts[i]!.fs;
    }
    return undefined;
  }

  /** Resolves an absolute path; `followLast` false returns a final symlink itself. */
  async resolve(path: string, ctx: ReadContext, followLast = true): Promise<Resolved> {
    const rootFs = this.mountAt('/');
    if (!rootFs) return { status: 'refused', reason: 'nothing is mounted at /' };
    const stack: Step[] = [{ path: '/', node: await rootFs.root(ctx), fs: rootFs }];
    const queue = path.split('/');
    while (queue.length > 0) {
      const name = queue.shift()!;
      if (name === '' || name === '.') continue;
      if (name === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      const top = stack[stack.length - 1]!;
      if (top.node.kind !== 'dir') return { status: 'not-found' };
      const childPath = top.path === '/' ? `/${name}` : `${top.path}/${name}`;
      const mounted = this.mountAt(childPath);
      const fs = mounted ?? top.fs;
      const node = mounted ? await mounted.root(ctx) : await top.fs.lookup(top.node, name, ctx);
      if (!node) return { status: 'not-found' };
      if (node.kind === 'symlink' && (queue.some((c) => c !== '' && c !== '.') || followLast)) {
        ctx.budget.spend('symlink-hops');
        const target = await fs.readlink(node, ctx);
        if (target === '') return { status: 'not-found' };
        if (target.startsWith('/')) stack.length = 1;
        queue.unshift(...target.split('/'));
        continue;
      }
      stack.push({ path: childPath, node, fs });
    }
    const last = stack[stack.length - 1]!;
    return { status: 'found', node: last.node, fs: last.fs, path: last.path };
  }

  /**
   * Every path of the tree, depth first, symlinks not followed (listings, tests).
   * Bounded: more than `limit` entries is an error rather than unbounded work.
   */
  async walk(ctx: ReadContext, limit = 100_000): Promise<WalkEntry[]> {
    const out: WalkEntry[] = [];
    const rootFs = this.mountAt('/');
    if (!rootFs) return out;
    const key = (fs: Filesystem, node: FsNode) =>
      `${this.mounts.findIndex((m) => m.fs === fs)}:${node.id}`;
    // `ancestors`: the directories above, so a directory that contains itself (a hostile
    // disk) is an error instead of an endless walk.
    const visit = async (dir: string, node: FsNode, fs: Filesystem, ancestors: Set<string>) => {
      check(ancestors.size <= MAX_WALK_DEPTH, `directories nested deeper than ${MAX_WALK_DEPTH}`);
      for (const e of await fs.list(node, ctx)) {
        const path = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
        if (out.length >= limit) throw corrupt(`more than ${limit} entries in the tree`);
        // A mountpoint shows the mounted filesystem's root, as in the kernel.
        const mounted = this.mountAt(path);
        const childFs = mounted ?? fs;
        const child = mounted ? await mounted.root(ctx) : e.node;
        const entry: WalkEntry = { path, kind: child.kind, size: child.size };
        if (child.kind === 'symlink') entry.target = await fs.readlink(child, ctx);
        out.push(entry);
        if (child.kind !== 'dir') continue;
        const id = key(childFs, child);
        check(!ancestors.has(id), `directory loop: ${path} contains itself`);
        // Depth first and one directory at a time: one set, grown and shrunk, is enough.
        ancestors.add(id);
        await visit(path, child, childFs, ancestors);
        ancestors.delete(id);
      }
    };
    const root = await rootFs.root(ctx);
    await visit('/', root, rootFs, new Set([key(rootFs, root)]));
    return out;
  }
}

export interface WalkEntry {
  path: string;
  kind: FsNode['kind'];
  size: number;
  target?: string;
}
