/**
 * What to answer for a file that was found: status, headers and the byte range of the
 * body, from the request's method and headers and the file's own metadata (size, mtime,
 * where it was found). Pure, so every rule has a table test:
 *
 * - `ETag` from size, mtime and where the file was found (a file that moves from
 *   default/ to the client's own dir is another entity); strong when the source knows the
 *   mtime, weak (`W/`) when it does not. `Last-Modified` from the mtime, when known.
 * - Conditional GET/HEAD (RFC 9110 §13.2.2): `If-None-Match` (weak comparison, `*`), else
 *   `If-Modified-Since`, answer 304. `If-Match` and `If-Unmodified-Since` are not
 *   evaluated: boot clients never send them, and nothing here is ever written.
 * - One range (`bytes=a-b`, `bytes=a-`, `bytes=-n`): 206 with `Content-Range`; a range
 *   past the end: 416 with `Content-Range: bytes *\/size`. Several ranges, or a header
 *   that does not parse, are ignored (RFC 9110 §14.2 allows it): the whole file, 200.
 *   `If-Range` keeps the range only for a strong ETag or the exact Last-Modified.
 */
import { createHash } from 'node:crypto';

export interface FileFacts {
  size: number;
  mtimeMs?: number | undefined;
  /** Which source and where: part of the entity's identity. */
  source: string;
  location: string;
}

export interface RequestFacts {
  method: 'GET' | 'HEAD';
  range?: string | undefined;
  ifRange?: string | undefined;
  ifNoneMatch?: string | undefined;
  ifModifiedSince?: string | undefined;
}

export interface ResponsePlan {
  status: 200 | 206 | 304 | 416;
  headers: Record<string, string>;
  /** Bytes [start, end) of the file to send; null: no body (HEAD, 304, 416). */
  body: { start: number; end: number } | null;
}

/** The validators of a file: its ETag and, when the mtime is known, Last-Modified. */
export function validatorsOf(f: FileFacts): { etag: string; lastModified?: string } {
  const where = createHash('sha256').update(`${f.source}\0${f.location}`).digest('hex');
  const tag = `${f.size.toString(16)}-${Math.floor(f.mtimeMs ?? 0).toString(16)}-${where.slice(0, 12)}`;
  if (f.mtimeMs === undefined) return { etag: `W/"${tag}"` };
  return { etag: `"${tag}"`, lastModified: new Date(f.mtimeMs).toUTCString() };
}

/** Parses a single `bytes=` range against `size`: the range, 'unsatisfiable', or null (ignore). */
export function parseRange(
  header: string,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | null {
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (!Number.isSafeInteger(suffix)) return null;
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? Number.MAX_SAFE_INTEGER : Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(last) || last < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(last, size - 1) + 1 };
}

/** RFC 9110 §8.8.3.2: weak comparison for If-None-Match. */
function noneMatchHits(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  const opaque = (t: string) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => opaque(t) === opaque(etag));
}

function notModifiedSince(header: string, mtimeMs: number | undefined): boolean {
  const since = Date.parse(header);
  if (mtimeMs === undefined || Number.isNaN(since)) return false;
  // HTTP dates have whole seconds.
  return Math.floor(mtimeMs / 1000) * 1000 <= since;
}

/** RFC 9110 §13.1.5: the range applies only if If-Range names this very entity, strongly. */
function ifRangeHolds(header: string, v: { etag: string; lastModified?: string }): boolean {
  const h = header.trim();
  if (h.startsWith('"') || h.startsWith('W/')) return !v.etag.startsWith('W/') && h === v.etag;
  return v.lastModified !== undefined && Date.parse(h) === Date.parse(v.lastModified);
}

export function planResponse(req: RequestFacts, f: FileFacts): ResponsePlan {
  const v = validatorsOf(f);
  const headers: Record<string, string> = {
    'accept-ranges': 'bytes',
    etag: v.etag,
    ...(v.lastModified ? { 'last-modified': v.lastModified } : {}),
    // Boot files change in place (a kernel upgraded on the client's disk): a cache may
    // keep them only if it asks again each time.
    'cache-control': 'no-cache',
  };
  const conditional =
    req.ifNoneMatch !== undefined
      ? noneMatchHits(req.ifNoneMatch, v.etag)
      : req.ifModifiedSince !== undefined && notModifiedSince(req.ifModifiedSince, f.mtimeMs);
  if (conditional) return { status: 304, headers, body: null };
  const entity = { 'content-type': 'application/octet-stream' };
  let range = req.range === undefined ? null : parseRange(req.range, f.size);
  if (range !== null && req.ifRange !== undefined && !ifRangeHolds(req.ifRange, v)) range = null;
  if (range === 'unsatisfiable')
    return {
      status: 416,
      headers: { ...headers, 'content-range': `bytes */${f.size}`, 'content-length': '0' },
      body: null,
    };
  const [status, start, end] = range
    ? [206 as const, range.start, range.end]
    : [200 as const, 0, f.size];
  const plan: ResponsePlan = {
    status,
    headers: { ...headers, ...entity, 'content-length': String(end - start) },
    body: req.method === 'HEAD' ? null : { start, end },
  };
  if (range) plan.headers['content-range'] = `bytes ${start}-${end - 1}/${f.size}`;
  return plan;
}
