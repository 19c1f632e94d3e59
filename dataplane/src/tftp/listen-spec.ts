/**
 * `--listen`: which local addresses the TFTP server binds, written once for every node
 * of a cluster. A spec is a comma-separated list of terms:
 *
 *   all | * | 0.0.0.0 | ::   every address of every interface, except the virtual
 *                             interfaces named by the skip patterns (kube-ipvs0, CNI
 *                             bridges and tunnels, loopback: DEFAULT_SKIP_INTERFACES)
 *   10.0.0.5, fe80::1%eth1   that address (bound even when the interface list does not
 *                             show it, e.g. 127.0.0.2)
 *   10.0.0.0/24              every local address inside the block, on any interface
 *   eth1, enp*               every address of the interfaces the name (a glob) matches
 *   !term                    not these (an address, a block or an interface)
 *
 * Only exclusions means "all, except". Terms are selectors, never requirements: a term that
 * matches nothing on this node selects nothing (the DaemonSet spec is the same on every
 * node), and the server reports not-ready until something matches.
 *
 * Pure: `selectListenAddresses` takes the interface list, so every rule has a table test.
 */
import { isIP } from 'node:net';
import { CidrSet, parseCidr } from '../../../common/src/cidr.ts';
import type { Cidr } from '../../../common/src/cidr.ts';
import { canonicalIp } from '../../../common/src/nbd-config.ts';

/**
 * Interfaces `all` leaves out: kube-proxy's IPVS dummy (every Service ClusterIP, often
 * thousands), the bridges, tunnels and veths of CNI plugins and container engines, and
 * loopback. Serving TFTP there lets pods reach the server and a pod IP collide with a
 * client's.
 */
export const DEFAULT_SKIP_INTERFACES: readonly string[] = [
  'lo',
  'kube-ipvs0',
  'cni*',
  'flannel*',
  'cali*',
  'cilium*',
  'vxlan*',
  'tunl*',
  'docker*',
  'veth*',
];

export type ListenSelector =
  | { kind: 'all' }
  | { kind: 'address'; address: string }
  | { kind: 'cidr'; cidr: Cidr; set: CidrSet }
  | { kind: 'interface'; pattern: string };

export interface ListenSpec {
  /** The spec as given, for log lines. */
  text: string;
  /** Empty: every address but the skipped interfaces' (as `all`). */
  include: ListenSelector[];
  exclude: ListenSelector[];
  /** Glob patterns of interface names `all` skips. */
  skipInterfaces: readonly string[];
  /** How often the interfaces are scanned again for addresses that came or went. */
  rescanMs: number;
  /**
   * SO_RCVBUF asked for each listening socket (0 or absent: the kernel's default). A boot
   * storm's burst of requests waits there while the event loop is busy; past it the kernel
   * drops them and every client waits a retransmission timeout (docs/performance.md).
   */
  receiveBufferBytes?: number;
}

/** One address of one interface, as the OS lists it. */
export interface LocalAddress {
  /** IPv6 link-local addresses carry their zone (`fe80::1%eth1`): it is needed to bind. */
  address: string;
  interface: string;
}

export interface SelectedAddress {
  address: string;
  /** Chosen by `all` (a failed bind there is a warning, not a start failure). */
  implicit: boolean;
  /** A literal address not in the interface list: kept wanted whatever the list says. */
  literal: boolean;
}

export type ListenSpecParse = { ok: true; spec: ListenSpec } | { ok: false; error: string };

const ALL_WORDS = new Set(['all', '*', '0.0.0.0', '::']);
/** Linux interface names: at most 15 bytes; globs may use * and ?. */
const INTERFACE_PATTERN = /^[A-Za-z*?][A-Za-z0-9_.@:*?-]{0,14}$/;

function parseSelector(term: string): ListenSelector | string {
  if (ALL_WORDS.has(term)) return { kind: 'all' };
  if (term.includes('/')) {
    const c = parseCidr(term);
    return c.ok ? { kind: 'cidr', cidr: c.cidr, set: new CidrSet([c.cidr]) } : c.error;
  }
  if (isIP(term.replace(/%.*$/, ''))) return { kind: 'address', address: term };
  // A mistyped address (10.0.0.300, 10.0.0) must not pass for an interface name.
  if (/^[0-9.]+$/.test(term) || (term.includes(':') && !/^[A-Za-z]/.test(term)))
    return `not an IP address: ${JSON.stringify(term)}`;
  if (INTERFACE_PATTERN.test(term)) return { kind: 'interface', pattern: term };
  return `${JSON.stringify(term)} is neither an address, a CIDR block nor an interface name`;
}

/** Parses `--listen` (and the skip patterns of `--listen-skip-interfaces`). */
export function parseListenSpec(
  text: string,
  skipInterfaces: readonly string[] = DEFAULT_SKIP_INTERFACES,
  rescanMs = 10_000,
): ListenSpecParse {
  const terms = text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (terms.length === 0) return { ok: false, error: 'no address given' };
  const include: ListenSelector[] = [];
  const exclude: ListenSelector[] = [];
  for (const raw of terms) {
    const negated = raw.startsWith('!');
    const term = negated ? raw.slice(1).trim() : raw;
    const selector = parseSelector(term);
    if (typeof selector === 'string') return { ok: false, error: selector };
    if (negated && selector.kind === 'all')
      return { ok: false, error: `${JSON.stringify(raw)} excludes everything` };
    (negated ? exclude : include).push(selector);
  }
  for (const p of skipInterfaces)
    if (!INTERFACE_PATTERN.test(p))
      return { ok: false, error: `not an interface name pattern: ${JSON.stringify(p)}` };
  return { ok: true, spec: { text, include, exclude, skipInterfaces, rescanMs } };
}

/** Glob match of an interface name: `*` any run, `?` one character. */
export function interfaceMatches(pattern: string, name: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(name);
}

function zoneOf(address: string): string | undefined {
  const i = address.indexOf('%');
  return i < 0 ? undefined : address.slice(i + 1);
}

/** Same address, and same zone when the literal names one. */
function sameAddress(literal: string, local: string): boolean {
  if (canonicalIp(literal) !== canonicalIp(local)) return false;
  const zone = zoneOf(literal);
  return zone === undefined || zone === zoneOf(local);
}

function matches(sel: ListenSelector, a: LocalAddress, skip: readonly string[]): boolean {
  switch (sel.kind) {
    case 'all':
      return !skip.some((p) => interfaceMatches(p, a.interface));
    case 'address':
      return sameAddress(sel.address, a.address);
    case 'cidr':
      return sel.set.contains(a.address.replace(/%.*$/, ''));
    case 'interface':
      return interfaceMatches(sel.pattern, a.interface);
  }
}

/**
 * The addresses to bind on this node, in interface-list order, literal addresses that
 * the list does not show last. Exclusions win over inclusions.
 */
export function selectListenAddresses(
  spec: ListenSpec,
  locals: readonly LocalAddress[],
): SelectedAddress[] {
  const include: ListenSelector[] = spec.include.length > 0 ? spec.include : [{ kind: 'all' }];
  const excluded = (a: LocalAddress) =>
    spec.exclude.some((sel) => matches(sel, a, spec.skipInterfaces));
  const out = new Map<string, SelectedAddress>();
  for (const a of locals) {
    if (out.has(a.address) || excluded(a)) continue;
    const by = include.filter((sel) => matches(sel, a, spec.skipInterfaces));
    if (by.length > 0)
      out.set(a.address, {
        address: a.address,
        implicit: by.every((sel) => sel.kind === 'all'),
        literal: false,
      });
  }
  for (const sel of include) {
    if (sel.kind !== 'address') continue;
    if (locals.some((a) => sameAddress(sel.address, a.address))) continue;
    // Not listed (127.0.0.2 is local on Linux without being an interface's address), or
    // not on this node: the bind decides, and is tried again at every rescan.
    const pseudo: LocalAddress = { address: sel.address, interface: '' };
    if (!out.has(sel.address) && !excluded(pseudo))
      out.set(sel.address, { address: sel.address, implicit: false, literal: true });
  }
  return [...out.values()];
}

/**
 * What a rescan changes, for any kind of listener: the bound addresses no longer selected
 * (close them), and the selected ones not bound yet (bind them), in selection order.
 */
export function rescanChanges(
  selected: readonly SelectedAddress[],
  bound: { has(address: string): boolean; keys(): Iterable<string> },
): { gone: string[]; missing: SelectedAddress[] } {
  const wanted = new Set(selected.map((s) => s.address));
  return {
    gone: [...bound.keys()].filter((a) => !wanted.has(a)),
    missing: selected.filter((s) => !bound.has(s.address)),
  };
}

/** One term as written: `10.0.0.0/24`, `eth1`, `10.0.0.5`, `all`. */
export function formatListenSelector(s: ListenSelector): string {
  switch (s.kind) {
    case 'all':
      return 'all';
    case 'address':
      return s.address;
    case 'cidr':
      return `${s.cidr.address}/${s.cidr.prefix}`;
    case 'interface':
      return s.pattern;
  }
}

/** The spec in words for a log line: what was asked, not what matched. */
export function describeListenSpec(spec: ListenSpec): Record<string, unknown> {
  return {
    listen: spec.text,
    ...(spec.include.length === 0 || spec.include.some((s) => s.kind === 'all')
      ? { skipInterfaces: spec.skipInterfaces.join(',') }
      : {}),
  };
}
