/**
 * Shared by the native reader's tests with real tools: random file trees for the image
 * fixtures, a config for a running nbdkit, reading a whole tree through a DiskSession,
 * and a GNU tar parser for guestfish's `tar-out`.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import pino from 'pino';
import { parseNbdConfig } from '../../common/src/nbd-config.ts';
import type { NbdConfig } from '../../common/src/nbd-config.ts';
import type { DiskSession } from '../src/sources/disk-session.ts';
import type { NativeDiskSession } from '../src/sources/native/index.ts';
import type { FileSpec } from './fixtures/disk-image.ts';
import { prng } from './helpers/fixtures.ts';

export const quietLogger = pino({ level: 'silent' });

function content(rand: () => number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = Math.floor(rand() * 2 ** 31);
  for (let i = 0; i + 4 <= size; i += 4) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

/**
 * A random tree: many files of awkward sizes (0, sector and block edges, a few MiB, a
 * sparse one), long names with spaces and mixed case, deep directories, and on ext
 * symlinks of every kind (relative, absolute, dangling, to directories, chained).
 */
export function randomTree(
  seed: number,
  opts: { fat: boolean; files: number; big?: boolean },
): FileSpec[] {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-';
  const taken = new Set<string>();
  const name = (dir: string): string => {
    for (;;) {
      const len = 1 + Math.floor(rand() * (rand() < 0.3 ? 60 : 12));
      let n = Array.from({ length: len }, () => pick([...alphabet]))
        .join('')
        .trim();
      if (rand() < 0.5) n += pick(['.txt', '.img', '.cfg', '.BIN', '.dtbo', '']);
      if (!n || n.startsWith('.') || n.endsWith('.')) continue;
      const key = `${dir}/${opts.fat ? n.toLowerCase() : n}`;
      if (taken.has(key)) continue;
      taken.add(key);
      return n;
    }
  };
  const dirs = [''];
  const files: FileSpec[] = [];
  let deep = '';
  for (let d = 0; d < 9; d++) {
    deep += `/${name(deep)}`;
    dirs.push(deep);
    files.push({ path: deep, dir: true });
  }
  for (let i = 0; i < 6; i++) {
    const parent = pick(dirs);
    const dir = `${parent}/${name(parent)}`;
    dirs.push(dir);
    files.push({ path: dir, dir: true });
  }
  const sizes = [0, 1, 511, 512, 513, 4095, 4096, 4097, 65536 + 3];
  const filePaths: string[] = [];
  for (let i = 0; i < opts.files; i++) {
    const dir = pick(dirs);
    const path = `${dir}/${name(dir)}`;
    const size = i < sizes.length ? sizes[i]! : Math.floor(rand() ** 3 * 300_000);
    files.push({ path, content: content(rand, size) });
    filePaths.push(path);
  }
  if (opts.big)
    files.push({ path: '/big kernel.img', content: content(rand, 3 * 1024 * 1024 + 17) });
  if (!opts.fat) {
    // Sparse (mke2fs -d skips zero blocks): data at 1 MiB and at the very end.
    const sparse = Buffer.alloc(2 * 1024 * 1024);
    sparse.write('middle', 1024 * 1024);
    sparse.write('end', sparse.length - 3);
    files.push({ path: '/sparse.img', content: sparse });
  }
  if (!opts.fat) {
    files.push({ path: '/links/to-file', symlink: `..${pick(filePaths)}` });
    files.push({ path: '/links/absolute', symlink: pick(filePaths) });
    files.push({ path: '/links/dangling', symlink: '/no/such/file' });
    files.push({ path: '/links/to-dir', symlink: deep });
    files.push({ path: '/links/chain', symlink: 'to-file' });
    files.push({
      path: '/links/long',
      symlink: `/${'x/..'.repeat(20)}${pick(filePaths).slice(1)}`,
    });
  }
  return files;
}

export function nativeConfig(
  url: string,
  mounts: { partition: number; mountpoint: string }[],
  extra: object = {},
): NbdConfig {
  const r = parseNbdConfig(JSON.stringify({ url, mounts, tftp_root: '/', ...extra }));
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.config;
}

export interface TreeEntry {
  kind: 'file' | 'dir' | 'symlink' | 'other';
  size?: number;
  sha256?: string;
  target?: string;
}

/** Reads a whole file through the DiskSession API, as a transfer does (64 KiB reads). */
export async function readThroughSession(session: DiskSession, path: string): Promise<Buffer> {
  const r = await session.open(path, new AbortController().signal);
  if (r.status !== 'found') throw new Error(`${path}: ${JSON.stringify(r)}`);
  const parts: Buffer[] = [];
  for (let pos = 0; ;) {
    const buf = Buffer.alloc(65536);
    const n = await r.file.read(buf, 0, buf.length, pos);
    if (n === 0) break;
    parts.push(buf.subarray(0, n));
    pos += n;
  }
  await r.file.close();
  return Buffer.concat(parts);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Every path of a native session's virtual FS: type, size, sha256 of files, link targets. */
export async function nativeTree(session: NativeDiskSession): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  for (const e of await session.vfs.walk(session.unbudgeted())) {
    if (e.kind === 'file') {
      const bytes = await readThroughSession(session, e.path);
      out.set(e.path, { kind: 'file', size: bytes.length, sha256: sha256(bytes) });
    } else if (e.kind === 'symlink') out.set(e.path, { kind: 'symlink', target: e.target! });
    // tar names FIFOs, devices and sockets by type letters we do not tell apart.
    else out.set(e.path, { kind: e.kind === 'dir' ? 'dir' : 'other' });
  }
  return out;
}

/** Parses a GNU/ustar archive (guestfish tar-out) into the same shape. */
export function tarTree(archive: Buffer): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  let longName: string | undefined;
  let longLink: string | undefined;
  const str = (b: Buffer) => b.toString('utf8', 0, b.indexOf(0) < 0 ? b.length : b.indexOf(0));
  for (let at = 0; at + 512 <= archive.length;) {
    const h = archive.subarray(at, at + 512);
    if (h.every((x) => x === 0)) break;
    const size = parseInt(str(h.subarray(124, 136)).trim() || '0', 8);
    const type = String.fromCharCode(h[156]!);
    const data = archive.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') {
      longName = str(data);
      continue;
    }
    if (type === 'K') {
      longLink = str(data);
      continue;
    }
    const prefix = h.toString('latin1', 257, 262) === 'ustar' ? str(h.subarray(345, 500)) : '';
    let name =
      longName ?? (prefix ? `${prefix}/${str(h.subarray(0, 100))}` : str(h.subarray(0, 100)));
    const link = longLink ?? str(h.subarray(157, 257));
    longName = longLink = undefined;
    name = '/' + name.replace(/^\.\//, '').replace(/\/$/, '');
    if (name === '/' || name === '/.') continue;
    if (type === '0' || type === '\0') out.set(name, { kind: 'file', size, sha256: sha256(data) });
    else if (type === '5') out.set(name, { kind: 'dir' });
    else if (type === '2') out.set(name, { kind: 'symlink', target: link });
    else out.set(name, { kind: 'other' });
  }
  return out;
}

/** Processes descended from this one whose command line names qemu (a VM). */
export function qemuDescendants(): string[] {
  const parent = new Map<number, number>();
  const cmd = new Map<number, string>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      cmd.set(Number(d), readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' '));
    } catch {
      // gone meanwhile
    }
  }
  const mine = (pid: number): boolean => {
    for (let p = parent.get(pid), hops = 0; p && hops < 64; p = parent.get(p), hops++) {
      if (p === process.pid) return true;
    }
    return false;
  };
  return [...cmd].filter(([pid, c]) => /qemu/.test(c) && mine(pid)).map(([, c]) => c);
}
