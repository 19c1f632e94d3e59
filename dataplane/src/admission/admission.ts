/**
 * Transfer admission: which transfer may start, and what it may cost. One module for
 * every protocol that serves files (TFTP today, HTTP boot later), holding the rule of
 * docs/admission.md:
 *
 * - A client must prove it exists before it costs anything. A request whose source
 *   address has not yet answered (TFTP: no first ACK yet) is **pending**: it may come from
 *   a spoofed address. Pending requests live in a small pool of their own, per subnet and
 *   overall. When the pool is full the oldest pending request goes (like a SYN queue),
 *   never a new one and never a proven transfer: a flood of spoofed requests only ever
 *   displaces other unproven requests, and a real client proves itself within a round
 *   trip, long before the flood reaches it.
 * - Only a **proven** transfer counts against the limits per exact address, per subnet
 *   (/24 for IPv4, /64 for IPv6: one machine holds a whole /64), overall, and against the
 *   one memory budget of all transfers. Past any of them the transfer is refused ("server
 *   busy"), with the reason.
 *
 * - A client already proven by its transport (HTTP: the TCP handshake completed from its
 *   address) is checked against the same limits and budget at once (`admit`): it never
 *   waits in the pending pool, so it can never displace an unproven TFTP request, and is
 *   never displaced. One instance serves both protocols: one budget, one set of limits.
 *
 * Pure bookkeeping: no I/O, no clock, no callbacks. A check and its reservation happen
 * in one synchronous call (`prove`), so two transfers can never both pass a check that
 * only one of them fits.
 */
import { enclosingCidr, formatCidr } from '../../../common/src/cidr.ts';
import { canonicalIp } from '../../../common/src/nbd-config.ts';

export const SUBNET_PREFIX_V4 = 24;
export const SUBNET_PREFIX_V6 = 64;

export interface AdmissionLimits {
  /** Proven transfers at once, overall. */
  maxActive: number;
  /** Proven transfers at once from one exact address. */
  maxActivePerClient: number;
  /** Proven transfers at once from one /24 (IPv4) or /64 (IPv6). */
  maxActivePerSubnet: number;
  /** Pending (unproven) requests held at once, overall; past it the oldest of the fullest subnet goes. */
  maxPending: number;
  /** Pending requests held at once from one subnet; past it that subnet's oldest goes. */
  maxPendingPerSubnet: number;
  /** Bytes of buffers all proven transfers may reserve together. */
  memoryBudgetBytes: number;
}

/** Why a transfer was refused: the `reason` label of rtftp_requests_refused_total. */
export type RefusalReason = 'server-busy' | 'client-busy' | 'subnet-busy' | 'memory-budget';

/**
 * The key a client's limits count under: its canonical address, plus the zone of a
 * link-local one (fe80::2 on one link and on another are two machines).
 */
export function clientKeyOf(address: string): string {
  const zone = /%.*$/.exec(address)?.[0] ?? '';
  return (canonicalIp(address) ?? address.replace(/%.*$/, '')) + zone;
}

/**
 * The subnet a client counts in: its /24 or /64, plus the zone of a link-local address
 * (fe80::/64 exists once per link, and the links are distinct networks).
 */
export function subnetOf(clientIp: string): string {
  const block = enclosingCidr(clientIp, SUBNET_PREFIX_V4, SUBNET_PREFIX_V6);
  if (!block) return clientIp;
  const zone = /%.*$/.exec(clientIp)?.[0] ?? '';
  return formatCidr(block) + zone;
}

/** One admitted request, pending until proven, then active until released. */
export interface Ticket<T> {
  readonly client: string;
  readonly subnet: string;
  /** What the caller keeps with it (the transfer); handed back when it is evicted. */
  readonly data: T;
  readonly state: 'pending' | 'active' | 'released';
  /** Bytes reserved against the memory budget (active only). */
  readonly bytes: number;
}

interface MutableTicket<T> {
  client: string;
  subnet: string;
  data: T;
  state: 'pending' | 'active' | 'released';
  bytes: number;
  seq: number;
}

export type RequestResult<T> =
  | {
      ok: true;
      ticket: Ticket<T>;
      /** Pending requests displaced to make room: the caller ends them ("server busy"). */
      evicted: T[];
    }
  | { ok: false; reason: RefusalReason };

export type ProveResult = { ok: true } | { ok: false; reason: RefusalReason };

export type AdmitResult =
  { ok: true; ticket: Ticket<never> } | { ok: false; reason: RefusalReason };

/**
 * What a protocol whose clients are proven before they ask (HTTP) needs of admission: the
 * same instance the TFTP server uses, seen through the calls that never touch the pool.
 */
export interface ProvenAdmission {
  admit(clientKey: string, bytes: number): AdmitResult;
  release(ticket: Ticket<never>): void;
  /** Bytes reserved by every active transfer, of every protocol. */
  readonly memoryReserved: number;
}

function bump(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n <= 0) counts.delete(key);
  else counts.set(key, n);
}

export class TransferAdmission<T> implements ProvenAdmission {
  /** Pending tickets per subnet, oldest first (a Set keeps insertion order). */
  private readonly pendingBySubnet = new Map<string, Set<MutableTicket<T>>>();
  private pendingCount = 0;
  private activeCount = 0;
  private readonly activePerClient = new Map<string, number>();
  private readonly activePerSubnet = new Map<string, number>();
  private reservedBytes = 0;
  private seq = 0;

  constructor(readonly limits: AdmissionLimits) {}

  get pending(): number {
    return this.pendingCount;
  }
  get active(): number {
    return this.activeCount;
  }
  /** Bytes reserved by active transfers. */
  get memoryReserved(): number {
    return this.reservedBytes;
  }

  /**
   * A new request, not yet proven. Refused only when proven transfers already fill a
   * limit it would count against (it could never be proven then); otherwise it joins the
   * pending pool, displacing the oldest pending requests past the pool's bounds.
   */
  request(clientIp: string, data: T): RequestResult<T> {
    const subnet = subnetOf(clientIp);
    const full = this.activeRefusal(clientIp, subnet, 0);
    if (full) return { ok: false, reason: full };
    const ticket: MutableTicket<T> = {
      client: clientIp,
      subnet,
      data,
      state: 'pending',
      bytes: 0,
      seq: this.seq++,
    };
    let pool = this.pendingBySubnet.get(subnet);
    if (!pool) this.pendingBySubnet.set(subnet, (pool = new Set()));
    pool.add(ticket);
    this.pendingCount += 1;
    const evicted: T[] = [];
    // The new ticket is the youngest of its subnet and of the pool: it is never the one chosen.
    while (pool.size > Math.max(1, this.limits.maxPendingPerSubnet))
      evicted.push(this.evictOldest(pool));
    while (this.pendingCount > Math.max(1, this.limits.maxPending))
      evicted.push(this.evictOldest(this.fullestPool()));
    return { ok: true, ticket, evicted };
  }

  /**
   * The client answered: the transfer now counts against every limit and reserves
   * `bytes` of the memory budget — or is refused, and stays pending until released.
   */
  prove(ticket: Ticket<T>, bytes: number): ProveResult {
    const t = ticket as MutableTicket<T>;
    if (t.state === 'active') return { ok: true };
    if (t.state === 'released') return { ok: false, reason: 'server-busy' };
    const refusal = this.activeRefusal(t.client, t.subnet, bytes);
    if (refusal) return { ok: false, reason: refusal };
    this.removePending(t);
    this.activate(t, bytes);
    return { ok: true };
  }

  /**
   * A transfer whose client is already proven: checked against every limit with its
   * `bytes`, and reserved, in this one call — or refused. Never pending, never evicted.
   */
  admit(clientIp: string, bytes: number): AdmitResult {
    const subnet = subnetOf(clientIp);
    const refusal = this.activeRefusal(clientIp, subnet, bytes);
    if (refusal) return { ok: false, reason: refusal };
    const ticket: MutableTicket<never> = {
      client: clientIp,
      subnet,
      data: undefined as never,
      state: 'pending',
      bytes: 0,
      seq: this.seq++,
    };
    this.activate(ticket, bytes);
    return { ok: true, ticket };
  }

  /** Counts a ticket against every limit and reserves its bytes. */
  private activate(t: MutableTicket<unknown>, bytes: number): void {
    t.state = 'active';
    t.bytes = bytes;
    this.activeCount += 1;
    bump(this.activePerClient, t.client, 1);
    bump(this.activePerSubnet, t.subnet, 1);
    this.reservedBytes += bytes;
  }

  /** The transfer ended (any way): frees what it held. Safe to call twice. */
  release(ticket: Ticket<T>): void {
    const t = ticket as MutableTicket<T>;
    if (t.state === 'pending') this.removePending(t);
    else if (t.state === 'active') {
      this.activeCount -= 1;
      bump(this.activePerClient, t.client, -1);
      bump(this.activePerSubnet, t.subnet, -1);
      this.reservedBytes -= t.bytes;
    }
    t.state = 'released';
  }

  /** The first limit that proven transfers already fill for this client (with `bytes` more). */
  private activeRefusal(client: string, subnet: string, bytes: number): RefusalReason | null {
    const l = this.limits;
    if (this.activeCount >= l.maxActive) return 'server-busy';
    if ((this.activePerClient.get(client) ?? 0) >= l.maxActivePerClient) return 'client-busy';
    if ((this.activePerSubnet.get(subnet) ?? 0) >= l.maxActivePerSubnet) return 'subnet-busy';
    // A new request is refused only when nothing at all is left; a proof needs its bytes.
    if (
      bytes === 0
        ? this.reservedBytes >= l.memoryBudgetBytes
        : this.reservedBytes + bytes > l.memoryBudgetBytes
    )
      return 'memory-budget';
    return null;
  }

  private removePending(t: MutableTicket<T>): void {
    const pool = this.pendingBySubnet.get(t.subnet);
    if (!pool?.delete(t)) return;
    this.pendingCount -= 1;
    if (pool.size === 0) this.pendingBySubnet.delete(t.subnet);
  }

  private evictOldest(pool: Set<MutableTicket<T>>): T {
    const oldest = pool.values().next().value as MutableTicket<T>;
    this.removePending(oldest);
    oldest.state = 'released';
    return oldest.data;
  }

  /**
   * The pool to take from when the whole pool is full: the subnet holding the most pending
   * requests (a flood's), its oldest among equals, so subnets with few — real clients
   * mid-handshake — keep theirs while a flood from elsewhere goes on.
   */
  private fullestPool(): Set<MutableTicket<T>> {
    let best: Set<MutableTicket<T>> | undefined;
    let bestSeq = Infinity;
    for (const pool of this.pendingBySubnet.values()) {
      const oldestSeq = (pool.values().next().value as MutableTicket<T>).seq;
      if (!best || pool.size > best.size || (pool.size === best.size && oldestSeq < bestSeq)) {
        best = pool;
        bestSeq = oldestSeq;
      }
    }
    return best!;
  }
}
