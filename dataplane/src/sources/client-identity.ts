/**
 * Whose view a request is served from: the one rule for every protocol (TFTP and HTTP).
 *
 * A client is its source address, as always — except that a request whose first path
 * component is the serial number a `<ip>.nbd` config declares (`"serial": "1a2b3c4d"`) is
 * served from that config's client view (`<root>/<ip>/`, its disk, `default/`) with the
 * prefix stripped, whatever address it comes from. A Raspberry Pi's bootloader asks for
 * `<serial>/start4.elf` (Pi 4/5) or `<serial>/start.elf` after `bootcode.bin` (Pi 3), so
 * a fleet on dynamic DHCP is served by serial, as nobodd does. A request without a known
 * serial prefix is served by its address, exactly as before.
 *
 * A serial two configs declare is served from neither: which Pi would boot is unknowable,
 * and booting the wrong one silently is worse than a refusal the admin sees (log, status).
 *
 * Names pass through parseRequestPath first (request-path.ts): a serial prefix never
 * lets a name reach a source that the name alone could not.
 */
import { canonicalSerial } from '../../../common/src/nbd-config.ts';
import { parseRequestPath } from './request-path.ts';
import type { RequestPathResult } from './request-path.ts';
import type { ViewRequest } from './source.ts';

/** The refusal reason of a request for a serial two configs declare. */
export const SERIAL_AMBIGUOUS_REASON = 'serial-ambiguous';

/** Which identity matched, for the per-transfer log line and /status. */
export type MatchedIdentity = { kind: 'ip' } | { kind: 'serial'; serial: string };

/** What a serial prefix names: the client address of the one config declaring it. */
export type SerialOwner = { clientIp: string } | { ambiguous: string[] };

export interface SerialLookup {
  /** The owner of a canonical serial, or undefined when no config declares it. */
  ownerOf(serial: string): SerialOwner | undefined;
  /** Told which serial matched, from which address (for /status). */
  noteMatch?(serial: string, sourceIp: string): void;
}

export type IdentifiedRequest =
  | { ok: true; request: ViewRequest; identity: MatchedIdentity }
  | {
      ok: false;
      reason: Extract<RequestPathResult, { ok: false }>['reason'] | typeof SERIAL_AMBIGUOUS_REASON;
    };

/**
 * The view request for a name a client at `sourceIp` (canonical) asked for, or why it is
 * refused. Pure but for `serials.noteMatch`.
 */
export function identifyRequest(
  sourceIp: string,
  name: string,
  serials: SerialLookup | undefined,
): IdentifiedRequest {
  const path = parseRequestPath(name);
  if (!path.ok) return path;
  const [first, ...rest] = path.components;
  const serial = serials && rest.length > 0 ? canonicalSerial(first!) : null;
  const owner = serial === null ? undefined : serials!.ownerOf(serial);
  if (serial === null || owner === undefined)
    return {
      ok: true,
      request: { clientIp: sourceIp, components: path.components, raw: name },
      identity: { kind: 'ip' },
    };
  if ('ambiguous' in owner) return { ok: false, reason: SERIAL_AMBIGUOUS_REASON };
  serials!.noteMatch?.(serial, sourceIp);
  return {
    ok: true,
    request: { clientIp: owner.clientIp, components: rest, raw: name },
    identity: { kind: 'serial', serial },
  };
}

/** Log fields saying which identity matched: `identity`, and for a serial whose view. */
export function identityFields(
  identity: MatchedIdentity,
  request: ViewRequest,
): Record<string, string> {
  return identity.kind === 'ip'
    ? { identity: 'ip' }
    : { identity: 'serial', serial: identity.serial, view: request.clientIp };
}

interface SerialMatch {
  sourceIp: string;
  at: Date;
}

/**
 * The serials the valid `<ip>.nbd` configs declare, kept current by the config watcher's
 * events. Memory is bounded by the configs: one entry per config, one last match each.
 */
export class SerialDirectory implements SerialLookup {
  private readonly serialOf = new Map<string, string>();
  private readonly owners = new Map<string, Set<string>>();
  private readonly lastMatch = new Map<string, SerialMatch>();

  /** A client's config now declares `serial` (undefined: none). */
  set(clientIp: string, serial: string | undefined): void {
    this.remove(clientIp);
    if (serial === undefined) return;
    this.serialOf.set(clientIp, serial);
    let set = this.owners.get(serial);
    if (!set) this.owners.set(serial, (set = new Set()));
    set.add(clientIp);
  }

  remove(clientIp: string): void {
    const serial = this.serialOf.get(clientIp);
    if (serial === undefined) return;
    this.serialOf.delete(clientIp);
    const set = this.owners.get(serial);
    set?.delete(clientIp);
    if (set?.size === 0) {
      this.owners.delete(serial);
      this.lastMatch.delete(serial);
    }
  }

  ownerOf(serial: string): SerialOwner | undefined {
    const set = this.owners.get(serial);
    if (!set) return undefined;
    if (set.size === 1) return { clientIp: set.values().next().value! };
    return { ambiguous: [...set].sort() };
  }

  /** Other clients declaring the same serial as `clientIp`'s config (a conflict), if any. */
  conflictsOf(clientIp: string): string[] {
    const serial = this.serialOf.get(clientIp);
    if (serial === undefined) return [];
    return [...(this.owners.get(serial) ?? [])].filter((ip) => ip !== clientIp).sort();
  }

  noteMatch(serial: string, sourceIp: string): void {
    if (this.owners.has(serial)) this.lastMatch.set(serial, { sourceIp, at: new Date() });
  }

  /** For /status: every declared serial, whose it is, and its last match. */
  status(): {
    serial: string;
    clients: string[];
    state: 'ok' | 'ambiguous';
    lastMatch?: { from: string; at: string };
  }[] {
    return [...this.owners]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([serial, set]) => {
        const m = this.lastMatch.get(serial);
        return {
          serial,
          clients: [...set].sort(),
          state: set.size === 1 ? ('ok' as const) : ('ambiguous' as const),
          ...(m ? { lastMatch: { from: m.sourceIp, at: m.at.toISOString() } } : {}),
        };
      });
  }
}
