/**
 * The file name an HTTP request asks for, from its request target (RFC 9112 §3.2): the
 * path of origin-form (`/boot.ipxe?x=1`) or absolute-form (`http://host/boot.ipxe`),
 * without the one leading `/` every path has (`/boot.ipxe` names what a TFTP client asks
 * as `boot.ipxe`; `//grub/grub.cfg` what GRUB asks as `/grub/grub.cfg`), percent-decoded
 * as UTF-8. The query is ignored, as a static file server does (iPXE
 * scripts may append one). What the name may then reach is decided where it is for TFTP
 * (sources/request-path.ts, via client-identity.ts): this module only decodes, and
 * answers 400 for a target that is not one.
 */

export type TargetParse = { ok: true; name: string } | { ok: false; reason: string };

const ABSOLUTE_FORM = /^http:\/\/[^/?#]*/i;
const PERCENT = /%([0-9A-Fa-f]{2})/g;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Percent-decodes a path into bytes, then UTF-8; null when either is malformed. */
function decodePath(path: string): string | null {
  if (/%(?![0-9A-Fa-f]{2})/.test(path)) return null;
  if (!path.includes('%')) return path;
  // Decoded byte by byte, then as one UTF-8 string: a multi-byte character split across
  // escapes decodes, an invalid sequence is refused rather than replaced.
  const bytes: number[] = [];
  let last = 0;
  for (const m of path.matchAll(PERCENT)) {
    bytes.push(...Buffer.from(path.slice(last, m.index), 'utf8'));
    bytes.push(parseInt(m[1]!, 16));
    last = m.index + m[0].length;
  }
  bytes.push(...Buffer.from(path.slice(last), 'utf8'));
  try {
    return utf8.decode(Uint8Array.from(bytes));
  } catch {
    return null;
  }
}

export function parseRequestTarget(target: string | undefined): TargetParse {
  if (!target) return { ok: false, reason: 'empty request target' };
  let path = target;
  const absolute = ABSOLUTE_FORM.exec(path);
  if (absolute) path = path.slice(absolute[0].length) || '/';
  if (!path.startsWith('/')) return { ok: false, reason: 'request target is not a path' };
  if (path.includes('#')) return { ok: false, reason: 'fragment in request target' };
  const query = path.indexOf('?');
  if (query >= 0) path = path.slice(0, query);
  const name = decodePath(path.slice(1));
  if (name === null) return { ok: false, reason: 'malformed percent-encoding' };
  return { ok: true, name };
}
