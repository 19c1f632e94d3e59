/**
 * Which NBD servers may be connected to. One rule, used in three places so they cannot
 * disagree:
 * - the operator's admission: a BootNetwork's `nbdServers` and `unixSockets`
 *   (common/src/bootnetwork-admission.ts);
 * - the dataplane's `--nbd-allow`, checked before every connect
 *   (dataplane/src/sources/nbd-target-gate.ts);
 * - the `nbd_allow` list the operator renders into a tenant's `<ip>.nbd`, which the
 *   dataplane checks too, so a hostname that moves after admission is refused at connect.
 *
 * The rule: a TCP target is allowed when an entry's block holds its address and the entry
 * allows its port (an entry without ports allows every port). Reserved ranges (loopback,
 * link-local, "this host", plus the caller's: the cluster's Service and Pod CIDRs, or
 * `--nbd-deny`) are never matched by a wider entry: `0.0.0.0/0` does not allow 127.0.0.1,
 * only an entry lying inside the reserved range does (`127.0.0.1/32`). A unix socket is
 * allowed only when its path is listed exactly.
 *
 * Entry syntax (flag and `nbd_allow`): `CIDR`, `CIDR:PORT`, `CIDR:FROM-TO`, a bare address
 * (a block of one; IPv6 with a port in brackets, `[fd00::1]:10809`), or an absolute socket
 * path (`/run/nbd/disk.sock`).
 */
import { posix } from 'node:path';
import {
  cidrHolds,
  cidrOf,
  cidrWithin,
  formatCidr,
  parseAddress,
  parseCidr,
  type Cidr,
} from './cidr.ts';
import { canonicalIp } from './ip.ts';
import type { NbdEndpoint } from './nbd-config.ts';

export interface PortRange {
  from: number;
  to: number;
}

/** One allowed block of TCP targets; no ports means every port. */
export interface TargetRule {
  cidr: Cidr;
  ports: readonly PortRange[];
}

/** A range refused unless an entry inside it names it. */
export interface ReservedRange {
  /** What it is, for messages: "loopback", "the cluster's Service CIDR". */
  name: string;
  cidr: Cidr;
}

export type TargetEntry = { kind: 'tcp'; rule: TargetRule } | { kind: 'socket'; path: string };

/** Which rule refused a target: a reserved range, no allowing entry, an unlisted socket. */
export type TargetRefusal = 'reserved' | 'not-allowed' | 'socket';

export type TargetCheck = { ok: true } | { ok: false; rule: TargetRefusal; message: string };

/**
 * Always reserved: a connection there reaches the node itself or its cloud metadata,
 * whatever network the node is on. (0.0.0.0 connects to the local host on Linux.)
 */
export const BUILTIN_RESERVED: readonly ReservedRange[] = [
  { name: 'loopback', cidr: cidrOf('127.0.0.0/8') },
  { name: 'loopback', cidr: cidrOf('::1/128') },
  { name: 'this host (0.0.0.0/8)', cidr: cidrOf('0.0.0.0/8') },
  { name: 'the unspecified address', cidr: cidrOf('::/128') },
  { name: 'link-local (cloud metadata lives here)', cidr: cidrOf('169.254.0.0/16') },
  { name: 'link-local', cidr: cidrOf('fe80::/10') },
];

const PORT_MAX = 65535;

function parsePort(text: string): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const n = Number(text);
  return n >= 1 && n <= PORT_MAX ? n : null;
}

/** `10809` or `10809-10900`. */
export function parsePortRange(text: string): PortRange | null {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!m) return null;
  const from = parsePort(m[1]!);
  const to = m[2] === undefined ? from : parsePort(m[2]);
  if (from === null || to === null || to < from) return null;
  return { from, to };
}

/** A socket path as it is compared: absolute, normalised, no NUL; null otherwise. */
export function normaliseSocketPath(path: string): string | null {
  if (!path.startsWith('/') || path.includes('\0') || path.length > 4096) return null;
  return posix.normalize(path);
}

/** Parses one entry of `--nbd-allow` / `nbd_allow`. */
export function parseTargetEntry(
  text: string,
): { ok: true; entry: TargetEntry } | { ok: false; error: string } {
  const t = text.trim();
  const bad = (why: string) => ({ ok: false as const, error: `${JSON.stringify(text)}: ${why}` });
  if (t.startsWith('/')) {
    const path = normaliseSocketPath(t);
    if (path === null) return bad('not a usable socket path');
    return { ok: true, entry: { kind: 'socket', path } };
  }
  let block = t;
  let ports: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.+))?$/.exec(t);
  if (bracketed) {
    block = bracketed[1]!;
    ports = bracketed[2];
  } else if (t.includes('/')) {
    // fd00::/8:10809 — the port follows the prefix length.
    const slash = t.indexOf('/');
    const colon = t.indexOf(':', slash);
    if (colon >= 0) {
      block = t.slice(0, colon);
      ports = t.slice(colon + 1);
    }
  } else if (/^[\d.]+:/.test(t)) {
    [block, ports] = t.split(':', 2) as [string, string];
  }
  const cidr = parseCidr(block);
  if (!cidr.ok) return bad(cidr.error);
  const range = ports === undefined ? undefined : parsePortRange(ports);
  if (range === null)
    return bad(`not a port or port range 1-${PORT_MAX}: ${JSON.stringify(ports)}`);
  return {
    ok: true,
    entry: { kind: 'tcp', rule: { cidr: cidr.cidr, ports: range ? [range] : [] } },
  };
}

/** The canonical entry texts of a rule: one per port range (`10.0.0.0/8:10809-10900`). */
export function formatTargetRule(rule: TargetRule): string[] {
  const block = formatCidr(rule.cidr);
  const withPort =
    rule.cidr.family === 6 && rule.cidr.prefix === 128 ? `[${rule.cidr.address}]` : block;
  if (rule.ports.length === 0) return [block];
  return rule.ports.map((p) => `${withPort}:${p.from === p.to ? p.from : `${p.from}-${p.to}`}`);
}

const portAllowed = (rule: TargetRule, port: number) =>
  rule.ports.length === 0 || rule.ports.some((p) => port >= p.from && port <= p.to);

/** An allow-list of NBD targets with reserved ranges; see the module comment. */
export class NbdTargetPolicy {
  constructor(
    readonly rules: readonly TargetRule[],
    readonly sockets: readonly string[],
    readonly reserved: readonly ReservedRange[] = BUILTIN_RESERVED,
  ) {}

  /** Parses entries (throws a RangeError naming the first bad one). */
  static parse(
    entries: Iterable<string>,
    reserved: readonly ReservedRange[] = BUILTIN_RESERVED,
  ): NbdTargetPolicy {
    const rules: TargetRule[] = [];
    const sockets: string[] = [];
    for (const text of entries) {
      const r = parseTargetEntry(text);
      if (!r.ok) throw new RangeError(r.error);
      if (r.entry.kind === 'socket') sockets.push(r.entry.path);
      else rules.push(r.entry.rule);
    }
    return new NbdTargetPolicy(rules, sockets, reserved);
  }

  private texts: readonly string[] | undefined;

  /** The entries in canonical text (what `nbd_allow` holds). */
  entries(): string[] {
    this.texts ??= [...this.rules.flatMap(formatTargetRule), ...this.sockets];
    return [...this.texts];
  }

  /** Whether a TCP connection to `ip`:`port` is allowed. */
  checkAddress(ip: string, port: number): TargetCheck {
    return this.check(ip, port, ip);
  }

  /**
   * Whether every address `host` resolved to is allowed on `port`: one refused address
   * refuses the name (it could be the one a connect picks).
   */
  checkHost(host: string, port: number, addresses: readonly string[]): TargetCheck {
    if (addresses.length === 0)
      return { ok: false, rule: 'not-allowed', message: `${host} resolved to no address` };
    for (const address of addresses) {
      const subject = address === host ? host : `${host} resolves to ${address}, which`;
      const c = this.check(address, port, subject);
      if (!c.ok) return c;
    }
    return { ok: true };
  }

  private check(ip: string, port: number, subject: string): TargetCheck {
    const a = parseAddress(ip);
    if (a === null)
      return { ok: false, rule: 'not-allowed', message: `${subject} is not an address` };
    const reserved = this.reserved.find((r) => cidrHolds(r.cidr, a));
    const holding = this.rules.filter(
      (r) => cidrHolds(r.cidr, a) && (!reserved || cidrWithin(r.cidr, reserved.cidr)),
    );
    if (holding.some((r) => portAllowed(r, port))) return { ok: true };
    if (reserved && holding.length === 0)
      return {
        ok: false,
        rule: 'reserved',
        message: `${subject} is ${reserved.name} (${formatCidr(reserved.cidr)}), refused unless an entry inside that range names it`,
      };
    if (holding.length)
      return {
        ok: false,
        rule: 'not-allowed',
        message: `${subject} is allowed on other ports than ${port}`,
      };
    return { ok: false, rule: 'not-allowed', message: `${subject} is in no allowed range` };
  }

  /** Whether connecting to the unix socket at `path` is allowed (exact, normalised path). */
  checkSocket(path: string): TargetCheck {
    const p = normaliseSocketPath(path);
    if (p !== null && this.sockets.includes(p)) return { ok: true };
    return { ok: false, rule: 'socket', message: `unix socket ${path} is not listed` };
  }
}

/** What DNS said about a hostname: its addresses, or why there are none. */
export type ResolvedHost = { addresses: readonly string[] } | { error: string };

/** Checks an NBD endpoint against a policy, resolving a hostname through `resolved`. */
export function checkEndpoint(
  policy: NbdTargetPolicy,
  endpoint: NbdEndpoint,
  resolved: (host: string) => ResolvedHost | undefined,
): TargetCheck {
  if (endpoint.transport === 'unix') return policy.checkSocket(endpoint.socket);
  const { host, port } = endpoint;
  if (canonicalIp(host) !== null) return policy.checkAddress(host, port);
  const answer = resolved(host);
  if (answer === undefined)
    return { ok: false, rule: 'not-allowed', message: `${host} has not been resolved yet` };
  if ('error' in answer)
    return { ok: false, rule: 'not-allowed', message: `${host} did not resolve (${answer.error})` };
  return policy.checkHost(host, port, answer.addresses);
}
