/**
 * The `<ip>.nbd` config format: parsed, validated and rendered in this one module, which
 * both the dataplane (reads the files) and the operator (renders them from BootClients) use.
 *
 * The format is the original RTFTP's, unchanged:
 *   {"url": "nbd://host:port/export",
 *    "mounts": [{"partition": 2, "mountpoint": "/"}, {"partition": 1, "mountpoint": "/boot"}],
 *    "tftp_root": "/boot"}
 * plus optional fields a file without them does not need: `backend`, `prefetch`, `idle_timeout`,
 * `nbd_allow` (the NBD targets this client's disk may be on, in the syntax of the
 * dataplane's --nbd-allow: the operator renders it for tenants' clients from their
 * BootNetwork, and the dataplane checks it before every connect), and `serial` (a
 * Raspberry Pi's serial number: a request whose first path component is it is served
 * from this client's view, whatever address it comes from).
 */
import { canonicalIp } from './ip.ts';
import { parseTargetEntry, NbdTargetPolicy } from './nbd-target-policy.ts';

export { canonicalIp };

/** Where the disk is: the parsed `url` field. */
export type NbdEndpoint =
  | { transport: 'tcp'; host: string; port: number; exportName: string }
  | { transport: 'unix'; socket: string; exportName: string };

export interface NbdMount {
  /** Partition number as libguestfs numbers them (N is /dev/sdaN); 0 means the whole disk. */
  partition: number;
  /** Absolute, normalised path inside the virtual filesystem. */
  mountpoint: string;
}

export type NbdBackend = 'auto' | 'native' | 'guestfs';

export interface NbdConfig {
  url: string;
  endpoint: NbdEndpoint;
  mounts: NbdMount[];
  /** The chroot inside the virtual FS: a request for `kernel.img` reads `<tftp_root>/kernel.img`. */
  tftpRoot: string;
  backend: NbdBackend;
  /** Connect when the config appears, before any request (default true). */
  prefetch: boolean;
  /** Seconds without a transfer before the disk is closed; undefined = the daemon's flag. */
  idleTimeout: number | undefined;
  /** The targets this disk may be on (canonical entries); undefined = --nbd-allow alone decides. */
  nbdAllow: string[] | undefined;
  /** A Raspberry Pi's serial number, 8 lower-case hex digits; undefined = identified by IP only. */
  serial: string | undefined;
}

/** One problem with a config, naming the field it concerns ('' for the whole document). */
export interface ConfigProblem {
  field: string;
  message: string;
}

export type ParseResult =
  { ok: true; config: NbdConfig } | { ok: false; problems: ConfigProblem[] };

export const NBD_DEFAULT_PORT = 10809;
export const NBD_CONFIG_SUFFIX = '.nbd';
const KNOWN_FIELDS = new Set([
  'url',
  'mounts',
  'tftp_root',
  'backend',
  'prefetch',
  'idle_timeout',
  'nbd_allow',
  'serial',
]);
/** More entries than a BootNetwork could sensibly need; keeps a config small. */
export const MAX_NBD_ALLOW_ENTRIES = 256;
const BACKENDS: readonly NbdBackend[] = ['auto', 'native', 'guestfs'];
export const MAX_PARTITION = 128;
export const MAX_IDLE_TIMEOUT = 7 * 24 * 3600;

/** A serial number as written: 8 hex digits, any case. */
export const SERIAL_PATTERN = /^[0-9a-fA-F]{8}$/;

/**
 * A Raspberry Pi serial number in its one canonical form (8 lower-case hex digits, as the
 * bootloader writes it in its TFTP prefix), or null when the text is not one. Matching is
 * case-insensitive everywhere because everything compares canonical forms.
 */
export function canonicalSerial(text: string): string | null {
  return SERIAL_PATTERN.test(text) ? text.toLowerCase() : null;
}

/** Error thrown by callers that want an exception; carries a stable code and the problems. */
export class NbdConfigError extends Error {
  readonly code = 'RTFTP_ERR_NBD_CONFIG';
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
  ) {
    super(`${file}: ${formatProblems(problems)}`);
    this.name = 'NbdConfigError';
  }
}

export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems.map((p) => (p.field ? `${p.field}: ${p.message}` : p.message)).join('; ');
}

/** Parses an NBD URL as the `.nbd` files and BootClients write it. */
export function parseNbdUrl(
  url: string,
): { ok: true; endpoint: NbdEndpoint } | { ok: false; message: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not echoed: a string that is not a URL may hold anything (redactNbdUrl's rule).
    return {
      ok: false,
      message: 'not a URL (nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH)',
    };
  }
  const exportName = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (u.username || u.password || u.hash) {
    return { ok: false, message: 'user, password and #fragment are not allowed in an NBD URL' };
  }
  if (u.protocol === 'nbd:') {
    if (u.search)
      return { ok: false, message: 'nbd:// URLs take no query; use nbd+unix:// for sockets' };
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    if (!host) return { ok: false, message: 'missing host (nbd://HOST[:PORT][/EXPORT])' };
    const port = u.port ? Number(u.port) : NBD_DEFAULT_PORT;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      return { ok: false, message: `port out of range: ${u.port}` };
    }
    return { ok: true, endpoint: { transport: 'tcp', host, port, exportName } };
  }
  if (u.protocol === 'nbd+unix:') {
    if (u.host)
      return { ok: false, message: 'nbd+unix:// takes no host: nbd+unix:///EXPORT?socket=PATH' };
    const socket = u.searchParams.get('socket');
    if (!socket || !socket.startsWith('/')) {
      return { ok: false, message: 'nbd+unix:// needs ?socket=/absolute/path' };
    }
    const extra = [...u.searchParams.keys()].filter((k) => k !== 'socket');
    if (extra.length)
      return { ok: false, message: `unknown query parameter(s): ${extra.join(', ')}` };
    return { ok: true, endpoint: { transport: 'unix', socket, exportName } };
  }
  return {
    ok: false,
    message: `unsupported scheme ${JSON.stringify(u.protocol)}: use nbd:// or nbd+unix://`,
  };
}

/** Normalises an absolute path inside the virtual FS; null when it is not acceptable. */
export function normaliseVirtualPath(p: string): string | null {
  if (!p.startsWith('/') || p.includes('\0') || p.length > 1024) return null;
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.some((s) => s === '..')) return null;
  return '/' + parts.join('/');
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates an already-parsed JSON value as a config. */
export function validateNbdConfig(doc: unknown): ParseResult {
  const problems: ConfigProblem[] = [];
  if (!isPlainObject(doc))
    return { ok: false, problems: [{ field: '', message: 'must be a JSON object' }] };
  for (const key of Object.keys(doc)) {
    if (!KNOWN_FIELDS.has(key)) problems.push({ field: key, message: 'unknown field' });
  }

  let endpoint: NbdEndpoint | undefined;
  if (typeof doc.url !== 'string') {
    problems.push({
      field: 'url',
      message: doc.url === undefined ? 'missing' : 'must be a string',
    });
  } else {
    const r = parseNbdUrl(doc.url);
    if (r.ok) endpoint = r.endpoint;
    else problems.push({ field: 'url', message: r.message });
  }

  const mounts: NbdMount[] = [];
  if (!Array.isArray(doc.mounts)) {
    problems.push({
      field: 'mounts',
      message: doc.mounts === undefined ? 'missing' : 'must be a list',
    });
  } else if (doc.mounts.length === 0) {
    problems.push({ field: 'mounts', message: 'needs at least one mount (the one at "/")' });
  } else {
    const seen = new Set<string>();
    doc.mounts.forEach((m: unknown, i: number) => {
      const f = `mounts[${i}]`;
      if (!isPlainObject(m)) return problems.push({ field: f, message: 'must be an object' });
      for (const key of Object.keys(m)) {
        if (key !== 'partition' && key !== 'mountpoint')
          problems.push({ field: `${f}.${key}`, message: 'unknown field' });
      }
      const part = m.partition;
      if (typeof part !== 'number' || !Number.isInteger(part) || part < 0 || part > MAX_PARTITION) {
        problems.push({
          field: `${f}.partition`,
          message: `must be an integer 0..${MAX_PARTITION} (0 = whole disk)`,
        });
      }
      const mp = typeof m.mountpoint === 'string' ? normaliseVirtualPath(m.mountpoint) : null;
      if (mp === null) {
        problems.push({
          field: `${f}.mountpoint`,
          message: 'must be an absolute path without ".."',
        });
      } else if (seen.has(mp)) {
        problems.push({ field: `${f}.mountpoint`, message: `${mp} is mounted twice` });
      } else {
        seen.add(mp);
        if (mp !== '/' && !seen.has('/')) {
          problems.push({
            field: `${f}.mountpoint`,
            message: `${mp} comes before the mount at "/"; mount "/" first`,
          });
        }
      }
      if (typeof part === 'number' && mp !== null) mounts.push({ partition: part, mountpoint: mp });
      return undefined;
    });
    if (!seen.has('/')) problems.push({ field: 'mounts', message: 'needs a mount at "/"' });
  }

  let tftpRoot = '/';
  if (doc.tftp_root === undefined) {
    problems.push({ field: 'tftp_root', message: 'missing' });
  } else {
    const t = typeof doc.tftp_root === 'string' ? normaliseVirtualPath(doc.tftp_root) : null;
    if (t === null)
      problems.push({ field: 'tftp_root', message: 'must be an absolute path without ".."' });
    else tftpRoot = t;
  }

  let backend: NbdBackend = 'auto';
  if (doc.backend !== undefined) {
    if (typeof doc.backend === 'string' && (BACKENDS as readonly string[]).includes(doc.backend)) {
      backend = doc.backend as NbdBackend;
    } else problems.push({ field: 'backend', message: `must be one of ${BACKENDS.join(', ')}` });
  }
  let prefetch = true;
  if (doc.prefetch !== undefined) {
    if (typeof doc.prefetch === 'boolean') prefetch = doc.prefetch;
    else problems.push({ field: 'prefetch', message: 'must be true or false' });
  }
  let idleTimeout: number | undefined;
  if (doc.idle_timeout !== undefined) {
    const v = doc.idle_timeout;
    if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_IDLE_TIMEOUT)
      idleTimeout = v;
    else
      problems.push({
        field: 'idle_timeout',
        message: `must be an integer 1..${MAX_IDLE_TIMEOUT} (seconds)`,
      });
  }

  const nbdAllow = validateNbdAllow(doc.nbd_allow, problems);
  let serial: string | undefined;
  if (doc.serial !== undefined) {
    const v = typeof doc.serial === 'string' ? canonicalSerial(doc.serial) : null;
    if (v === null)
      problems.push({
        field: 'serial',
        message: 'must be 8 hex digits (a Raspberry Pi serial number, e.g. "1a2b3c4d")',
      });
    else serial = v;
  }

  if (problems.length || !endpoint) return { ok: false, problems };
  return {
    ok: true,
    config: {
      url: doc.url as string,
      endpoint,
      mounts,
      tftpRoot,
      backend,
      prefetch,
      idleTimeout,
      nbdAllow,
      serial,
    },
  };
}

/** `nbd_allow`: a list of target entries, returned in canonical form. */
function validateNbdAllow(v: unknown, problems: ConfigProblem[]): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > MAX_NBD_ALLOW_ENTRIES) {
    problems.push({
      field: 'nbd_allow',
      message: `must be a list of at most ${MAX_NBD_ALLOW_ENTRIES} entries (CIDR[:PORT[-PORT]] or /socket/path)`,
    });
    return undefined;
  }
  const bad = v.findIndex((e) => typeof e !== 'string' || !parseTargetEntry(e).ok);
  if (bad >= 0) {
    const e: unknown = v[bad];
    const r = typeof e === 'string' ? parseTargetEntry(e) : undefined;
    problems.push({
      field: `nbd_allow[${bad}]`,
      message: r && !r.ok ? r.error : 'must be a string',
    });
    return undefined;
  }
  return NbdTargetPolicy.parse(v as string[]).entries();
}

/** Parses the text of a `.nbd` file. */
export function parseNbdConfig(text: string): ParseResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return {
      ok: false,
      problems: [{ field: '', message: `not valid JSON: ${(err as Error).message}` }],
    };
  }
  return validateNbdConfig(doc);
}

/** The input of {@link renderNbdConfig}: what a user or a BootClient says. */
export interface NbdConfigInput {
  url: string;
  mounts: readonly NbdMount[];
  tftpRoot: string;
  backend?: NbdBackend | undefined;
  prefetch?: boolean | undefined;
  idleTimeout?: number | undefined;
  nbdAllow?: readonly string[] | undefined;
  serial?: string | undefined;
}

/**
 * Renders a config as the file text, deterministically (fixed key order, one trailing
 * newline), writing optional fields only when they differ from the default, so a
 * config without them stays byte-for-byte the original format.
 */
export function renderNbdConfig(c: NbdConfigInput): string {
  const doc: Record<string, unknown> = {
    url: c.url,
    mounts: c.mounts.map((m) => ({ partition: m.partition, mountpoint: m.mountpoint })),
    tftp_root: c.tftpRoot,
  };
  if (c.backend !== undefined && c.backend !== 'auto') doc.backend = c.backend;
  if (c.prefetch === false) doc.prefetch = false;
  if (c.idleTimeout !== undefined) doc.idle_timeout = c.idleTimeout;
  if (c.nbdAllow !== undefined) doc.nbd_allow = [...c.nbdAllow];
  if (c.serial !== undefined) doc.serial = c.serial;
  return JSON.stringify(doc) + '\n';
}

/**
 * The client address a config file name declares (`10.0.0.5.nbd` → `10.0.0.5`), or null
 * when the name is not `<canonical ip>.nbd`. Exact match only: `127.0.0.20.nbd` is never
 * a config for 127.0.0.2.
 */
export function clientIpOfConfigName(name: string): string | null {
  if (!name.endsWith(NBD_CONFIG_SUFFIX)) return null;
  const ip = name.slice(0, -NBD_CONFIG_SUFFIX.length);
  return canonicalIp(ip) === ip ? ip : null;
}

export function configNameOf(clientIp: string): string {
  return clientIp + NBD_CONFIG_SUFFIX;
}
