/**
 * What of an NBD URL may be shown: host, port and export (for a unix socket, its path and
 * the export), nothing else. Every place that puts an NBD URL into a status, a log line or
 * a metric goes through here: the dataplane's /status and logs, the operator's condition
 * messages. A URL may carry more than the target (a user name, a password, a query, a
 * fragment): the `.nbd` parser refuses those, but a refused file is still reported, and
 * the report must not repeat them.
 */
import { parseNbdUrl, type NbdEndpoint } from './nbd-config.ts';

/** Shown instead of a URL that does not parse: nothing of it is repeated. */
export const UNPARSEABLE_NBD_URL = '(not a valid NBD URL)';

/** `nbd://host:port/export` or `nbd+unix:///export?socket=/path`, with the default port explicit. */
export function describeNbdEndpoint(e: NbdEndpoint): string {
  return e.transport === 'tcp'
    ? `nbd://${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}/${e.exportName}`
    : `nbd+unix:///${e.exportName}?socket=${e.socket}`;
}

/** The URL reduced to its target: see the module comment. */
export function redactNbdUrl(url: unknown): string {
  if (typeof url !== 'string') return UNPARSEABLE_NBD_URL;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return UNPARSEABLE_NBD_URL;
  }
  // Drop what the parser would refuse, then describe what is left, if it is a target.
  u.username = '';
  u.password = '';
  u.hash = '';
  if (u.protocol === 'nbd:') u.search = '';
  else if (u.protocol === 'nbd+unix:') {
    const socket = u.searchParams.get('socket');
    u.search = '';
    if (socket !== null) u.searchParams.set('socket', socket);
  }
  const parsed = parseNbdUrl(u.href);
  return parsed.ok ? describeNbdEndpoint(parsed.endpoint) : UNPARSEABLE_NBD_URL;
}
