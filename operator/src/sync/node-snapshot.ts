/**
 * The last complete config snapshot, kept on the node (a hostPath, `--snapshot-dir`), so a
 * dataplane pod that starts while the API server is down serves the configs it last knew
 * instead of nothing.
 *
 * One file, `snapshot.json`, replaced atomically: written to a dot-named temp file in the
 * same directory, fsynced, renamed over the old one, then the directory fsynced. A crash or
 * power cut at any moment leaves the old file or the new one, never a mix: a rename within
 * one file system is atomic, and the data is on disk before the name points at it. Leftover
 * temp files of a crashed write are removed at the next load. A checksum over the body
 * catches what a rename cannot: a copy made by hand, a truncated file, a bad disk.
 *
 * Layout: one header line `{"format":1,"sha256":"<hex of the body>"}`, then the body:
 *   {"namespace": "<configs namespace>", "resourceVersions": {"<shard>": "<rv>", ...},
 *    "syncedAt": "<ISO time the API's listing was applied>", "files": {"<ip>.nbd": "<text>", ...}}
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { clientIpOfConfigName } from '../../../common/src/nbd-config.ts';
import { isRecord, isStringRecord, isTimeString } from '../../../common/src/json-shape.ts';

export const NODE_SNAPSHOT_FILE = 'snapshot.json';
const TEMP_PREFIX = `.${NODE_SNAPSHOT_FILE}.tmp-`;
const FORMAT = 1;
/** 256 shards of at most 1 MiB each, with JSON escaping: nothing legitimate is bigger. */
export const MAX_NODE_SNAPSHOT_BYTES = 384 * 1024 * 1024;

export interface NodeSnapshot {
  /** The namespace of the rendered ConfigMaps it was taken from. */
  namespace: string;
  resourceVersions: Record<string, string>;
  /** When its API listing was applied (ISO 8601). */
  syncedAt: string;
  /** `<ip>.nbd` → text. */
  files: Record<string, string>;
}

export function encodeNodeSnapshot(s: NodeSnapshot): string {
  const body = JSON.stringify({
    namespace: s.namespace,
    resourceVersions: s.resourceVersions,
    syncedAt: s.syncedAt,
    files: s.files,
  });
  const sha256 = createHash('sha256').update(body).digest('hex');
  return `${JSON.stringify({ format: FORMAT, sha256 })}\n${body}\n`;
}

export type NodeSnapshotParse =
  { ok: true; snapshot: NodeSnapshot } | { ok: false; reason: string };

/** Checks a snapshot's text: header, checksum, then every field; the reason names the first fault. */
export function decodeNodeSnapshot(text: string): NodeSnapshotParse {
  const nl = text.indexOf('\n');
  if (nl < 0) return { ok: false, reason: 'no header line' };
  let header: unknown;
  try {
    header = JSON.parse(text.slice(0, nl));
  } catch {
    return { ok: false, reason: 'header is not JSON' };
  }
  if (!isRecord(header) || header.format !== FORMAT)
    return { ok: false, reason: `not format ${FORMAT}` };
  const body = text.slice(nl + 1).replace(/\n$/, '');
  if (createHash('sha256').update(body).digest('hex') !== header.sha256)
    return { ok: false, reason: 'checksum mismatch (truncated or altered)' };
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return { ok: false, reason: 'body is not JSON' };
  }
  if (!isRecord(v)) return { ok: false, reason: 'body is not an object' };
  if (typeof v.namespace !== 'string') return { ok: false, reason: 'namespace: not a string' };
  if (!isStringRecord(v.resourceVersions))
    return { ok: false, reason: 'resourceVersions: not an object of strings' };
  if (!isTimeString(v.syncedAt)) return { ok: false, reason: 'syncedAt: not an ISO time' };
  if (!isStringRecord(v.files)) return { ok: false, reason: 'files: not an object of strings' };
  const bad = Object.keys(v.files).find((name) => clientIpOfConfigName(name) === null);
  if (bad !== undefined)
    return { ok: false, reason: `files: ${JSON.stringify(bad)} is not <ip>.nbd` };
  return {
    ok: true,
    snapshot: {
      namespace: v.namespace,
      resourceVersions: v.resourceVersions,
      syncedAt: v.syncedAt,
      files: v.files,
    },
  };
}

/** An open file the store writes: the steps a crash can fall between. */
export interface SnapshotFileHandle {
  write(data: Buffer): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** The file system calls of a replacement, as a port: tests interrupt them one by one. */
export interface SnapshotFs {
  create(path: string): Promise<SnapshotFileHandle>;
  rename(from: string, to: string): Promise<void>;
  syncDir(dir: string): Promise<void>;
  readFile(path: string, maxBytes: number): Promise<string>;
  list(dir: string): Promise<string[]>;
  remove(path: string): Promise<void>;
}

export const nodeFs: SnapshotFs = {
  async create(path) {
    // wx: never follow or reuse a name someone left in the way; 0600: NBD URLs are the admin's.
    const h = await open(path, 'wx', 0o600);
    return {
      write: async (data) => {
        await h.writeFile(data);
      },
      sync: () => h.sync(),
      close: () => h.close(),
    };
  },
  rename: (from, to) => rename(from, to),
  async syncDir(dir) {
    const h = await open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  },
  async readFile(path, maxBytes) {
    const st = await stat(path);
    if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EINVAL' });
    if (st.size > maxBytes)
      throw Object.assign(new Error(`larger than ${maxBytes} bytes`), { code: 'EFBIG' });
    return readFile(path, 'utf8');
  },
  list: (dir) => readdir(dir),
  remove: (path) => rm(path, { force: true }),
};

export type NodeSnapshotLoad =
  { ok: true; snapshot: NodeSnapshot } | { ok: false; missing: boolean; reason: string };

export class NodeSnapshotStore {
  constructor(
    readonly dir: string,
    private readonly fs: SnapshotFs = nodeFs,
  ) {}

  get path(): string {
    return join(this.dir, NODE_SNAPSHOT_FILE);
  }

  /** Reads the snapshot, after removing temp files a crashed write left behind. */
  async load(): Promise<NodeSnapshotLoad> {
    let names: string[];
    try {
      names = await this.fs.list(this.dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return { ok: false, missing: false, reason: `directory unreadable (${code})` };
    }
    for (const name of names)
      if (name.startsWith(TEMP_PREFIX)) await this.fs.remove(join(this.dir, name)).catch(() => {});
    if (!names.includes(NODE_SNAPSHOT_FILE))
      return { ok: false, missing: true, reason: 'none on this node yet' };
    let text: string;
    try {
      text = await this.fs.readFile(this.path, MAX_NODE_SNAPSHOT_BYTES);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { ok: false, missing: false, reason: `unreadable (${e.code ?? e.message})` };
    }
    const parsed = decodeNodeSnapshot(text);
    return parsed.ok ? parsed : { ok: false, missing: false, reason: parsed.reason };
  }

  /** Replaces the snapshot atomically: the old one or the new one, whatever happens. */
  async save(snapshot: NodeSnapshot): Promise<void> {
    const tmp = join(this.dir, TEMP_PREFIX + randomBytes(4).toString('hex'));
    const data = Buffer.from(encodeNodeSnapshot(snapshot));
    let handle: SnapshotFileHandle | undefined;
    try {
      handle = await this.fs.create(tmp);
      await handle.write(data);
      await handle.sync();
      const h = handle;
      handle = undefined;
      await h.close();
      await this.fs.rename(tmp, this.path);
    } catch (err) {
      await handle?.close().catch(() => {});
      await this.fs.remove(tmp).catch(() => {});
      throw err;
    }
    // The rename is durable only once the directory is: after a power cut without this,
    // the old name could come back (still a whole snapshot, just the older one).
    await this.fs.syncDir(this.dir);
  }
}
