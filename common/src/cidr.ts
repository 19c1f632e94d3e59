/**
 * CIDR blocks: parsing and membership, for every rule that names address ranges
 * (BootNetwork client and NBD server ranges, `--nbd-allow`, `--listen`). One module, so
 * the operator and the dataplane agree on what a range contains.
 *
 * Addresses are matched in canonical form (`canonicalIp`): an IPv4-mapped IPv6 address
 * (`::ffff:10.0.0.5`) is its IPv4 address, so it can never slip past an IPv4 rule.
 */
import { BlockList, isIP } from 'node:net';
import { canonicalIp } from './ip.ts';

export interface Cidr {
  /** The network address, canonical. */
  readonly address: string;
  readonly prefix: number;
  readonly family: 4 | 6;
}

export type CidrParse = { ok: true; cidr: Cidr } | { ok: false; error: string };

/** The canonical text of a block: `10.0.0.0/8`, `fd00::/8`. */
export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

function familyOf(address: string): 4 | 6 | 0 {
  const k = isIP(address);
  return k === 4 || k === 6 ? k : 0;
}

/** Zeroes the bits of `address` past `prefix`; the result is canonical. */
function networkOf(address: string, prefix: number, family: 4 | 6): string {
  const bytes = family === 4 ? Buffer.from(address.split('.').map(Number)) : ipv6Bytes(address);
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  }
  if (family === 4) return [...bytes].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return canonicalIp(groups.join(':'))!;
}

function ipv6Bytes(address: string): Buffer {
  // Expand through URL-free arithmetic: split on '::', pad with zero groups.
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const p = v4[1]!.split('.').map(Number);
    text =
      text.slice(0, -v4[1]!.length) +
      `${((p[0]! << 8) | p[1]!).toString(16)}:${((p[2]! << 8) | p[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g: string, i: number) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/**
 * Parses `10.0.0.0/8`, `fd00::/64`, or a bare address (a block of one: /32 or /128).
 * Host bits past the prefix are refused (`10.0.0.1/8` is a typo more often than a wish),
 * as are zone indexes.
 */
export function parseCidr(text: string): CidrParse {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text.trim());
  if (!m) return { ok: false, error: `not a CIDR block: ${JSON.stringify(text)}` };
  const raw = m[1]!;
  if (raw.includes('%'))
    return { ok: false, error: `a CIDR block has no zone index: ${JSON.stringify(text)}` };
  const family = familyOf(raw);
  if (family === 0) return { ok: false, error: `not an IP address: ${JSON.stringify(raw)}` };
  const canonical = canonicalIp(raw)!;
  // An IPv4-mapped block (::ffff:10.0.0.0/104) is written as the IPv4 block it means.
  const mapped = family === 6 && familyOf(canonical) === 4;
  const max = family === 4 ? 32 : 128;
  let prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max)
    return { ok: false, error: `prefix /${prefix} is longer than ${max} bits: ${text}` };
  let fam: 4 | 6 = family;
  if (mapped) {
    if (prefix < 96)
      return { ok: false, error: `an IPv4-mapped block needs /96 or longer: ${text}` };
    prefix -= 96;
    fam = 4;
  }
  const network = networkOf(canonical, prefix, fam);
  if (network !== canonical)
    return {
      ok: false,
      error: `host bits set in ${text} (the block is ${network}/${prefix})`,
    };
  return { ok: true, cidr: { address: network, prefix, family: fam } };
}

/** Parses or throws a RangeError naming the block: for configuration read at start. */
export function cidrOf(text: string): Cidr {
  const r = parseCidr(text);
  if (!r.ok) throw new RangeError(r.error);
  return r.cidr;
}

/**
 * The block of `prefixV4` (IPv4) or `prefixV6` (IPv6) bits that holds `ip` — the /24 or
 * /64 a client belongs to, say — or null when `ip` is not an address. Any textual form is
 * taken (zone indexes are dropped; an IPv4-mapped address is its IPv4 address).
 */
export function enclosingCidr(ip: string, prefixV4: number, prefixV6: number): Cidr | null {
  const canonical = canonicalIp(ip);
  if (canonical === null) return null;
  const family = familyOf(canonical) === 4 ? 4 : 6;
  const prefix = family === 4 ? prefixV4 : prefixV6;
  return { address: networkOf(canonical, prefix, family), prefix, family };
}

/**
 * A set of blocks with one membership test, backed by node's BlockList: one list per
 * family, because a BlockList's IPv6 block also matches IPv4 addresses (as mapped ones),
 * and `::/0` must not mean "every IPv4 address too".
 */
export class CidrSet {
  private readonly v4 = new BlockList();
  private readonly v6 = new BlockList();
  readonly blocks: readonly Cidr[];

  constructor(blocks: Iterable<Cidr>) {
    this.blocks = [...blocks];
    for (const b of this.blocks)
      if (b.family === 4) this.v4.addSubnet(b.address, b.prefix, 'ipv4');
      else this.v6.addSubnet(b.address, b.prefix, 'ipv6');
  }

  static parse(texts: Iterable<string>): CidrSet {
    return new CidrSet([...texts].map(cidrOf));
  }

  /** True when `ip` (any textual form; IPv4-mapped counts as IPv4) lies in a block. */
  contains(ip: string): boolean {
    const c = canonicalIp(ip);
    if (c === null) return false;
    return familyOf(c) === 4 ? this.v4.check(c, 'ipv4') : this.v6.check(c, 'ipv6');
  }

  get size(): number {
    return this.blocks.length;
  }

  toString(): string {
    return this.blocks.map(formatCidr).join(',');
  }
}

/** An address parsed once for many block checks: its family and its bytes. */
export interface ParsedAddress {
  family: 4 | 6;
  bytes: Uint8Array;
}

/** Parses any textual form (IPv4-mapped as IPv4); null for anything that is not an address. */
export function parseAddress(ip: string): ParsedAddress | null {
  const a = canonicalIp(ip);
  if (a === null) return null;
  const family = familyOf(a);
  if (family === 0) return null;
  return { family, bytes: family === 4 ? Uint8Array.from(a.split('.').map(Number)) : ipv6Bytes(a) };
}

/** The network bytes of each block, made on first use: admission checks thousands of addresses. */
const networkBytes = new WeakMap<Cidr, Uint8Array>();

/** True when a parsed address lies in block `c` (no allocation per check). */
export function cidrHolds(c: Cidr, a: ParsedAddress): boolean {
  if (a.family !== c.family) return false;
  let net = networkBytes.get(c);
  if (!net) networkBytes.set(c, (net = parseAddress(c.address)!.bytes));
  const whole = c.prefix >> 3;
  for (let i = 0; i < whole; i++) if (a.bytes[i] !== net[i]) return false;
  const rest = c.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a.bytes[whole]! & mask) === net[whole];
}

/** True when `ip` (any textual form; IPv4-mapped counts as IPv4) lies in block `c`. */
export function cidrContains(c: Cidr, ip: string): boolean {
  const a = parseAddress(ip);
  return a !== null && cidrHolds(c, a);
}

/** True when every address of `inner` lies in `outer` (a block lies within itself). */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return (
    inner.family === outer.family &&
    inner.prefix >= outer.prefix &&
    networkOf(inner.address, outer.prefix, outer.family) === outer.address
  );
}
