/**
 * The claim ledger: which namespace holds each client IP, kept across the deletion of the
 * BootClient that claimed it, so a claim from another namespace never takes an IP over by
 * itself: not while the holder waits on a finalizer, not in the seconds between a delete
 * and a re-create (GitOps resync, `kubectl replace --force`).
 *
 * The ledger lives in the rendered ConfigMap shards, beside the configs, as one data key
 * per IP (`<ip>.claim`, in the shard of `<ip>.nbd`): the operator alone writes it, a claim
 * and the config it guards change in one write, and a restarted operator reads it back.
 * The sync sidecar serves only `<ip>.nbd` keys, so claims never reach the dataplane's
 * directory.
 *
 * Rules (settleClaims, pure):
 * - An IP with a claim goes to the oldest live claimant of the claim's namespace; claimants
 *   from any other namespace lose, whether or not the holder namespace has one now.
 * - An IP without a claim goes to its oldest live claimant, and the claim is recorded.
 * - A claim whose namespace has no live claimant is vacant from that moment on; it is
 *   released when it has been vacant for the retention (default 7 days; 0 = never) or
 *   when the cluster admin deletes its key. A live claimant from the holder namespace
 *   makes it held again.
 * Within one namespace the oldest claimant wins, as before.
 *
 * A Raspberry Pi serial (`spec.serial`) is claimed the same way, in the same ledger, under
 * its own key (`serial-<8 hex>.claim`; serialClaimId): render() settles the serials among
 * the BootClients that hold their IP, with the same rules.
 */
import { canonicalIp } from '../../../common/src/ip.ts';
import { canonicalSerial } from '../../../common/src/nbd-config.ts';
import { configMapKeyOf, fileNameOfConfigMapKey } from './shards.ts';

/** One ledger entry. */
export interface Claim {
  namespace: string;
  /** ISO time since when the namespace has had no live claimant; absent while held. */
  vacantSince?: string;
}

/** A BootClient wanting an IP: valid, admitted, not being deleted. */
export interface Claimant {
  key: string;
  namespace: string;
  ip: string;
}

export interface SettledClaims<C extends Claimant> {
  /** Claim id (an IP, or a serialClaimId) → the claimant that holds it. */
  holders: Map<string, C>;
  /** Claimant key → who beat it: a claimant of the same namespace, or null for another namespace. */
  losers: Map<string, { id: string; holder: C | null }>;
  /** The ledger as it should be stored. */
  ledger: Map<string, Claim>;
  /** Claim ids whose claim was released this time because its retention ran out. */
  expired: string[];
  /** Milliseconds until the next vacant claim expires; undefined when none will. */
  nextExpiryMs: number | undefined;
}

export const CLAIM_KEY_SUFFIX = '.claim';
export const DEFAULT_CLAIM_RETENTION_S = 7 * 24 * 3600;

const SERIAL_CLAIM_PREFIX = 'serial-';

const isoSeconds = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

/** The ledger id of a canonical serial: `serial-1a2b3c4d` (never an IP's spelling). */
export function serialClaimId(serial: string): string {
  return SERIAL_CLAIM_PREFIX + serial;
}

/** True for the id of a serial's claim, false for an IP's. */
export function isSerialClaimId(id: string): boolean {
  return id.startsWith(SERIAL_CLAIM_PREFIX);
}

/** Log fields naming a claim: `{ ip }` or `{ serial }`. */
export function claimLogFields(id: string): { ip: string } | { serial: string } {
  return isSerialClaimId(id) ? { serial: id.slice(SERIAL_CLAIM_PREFIX.length) } : { ip: id };
}

/**
 * Settles who holds each claim id: by default a claimant's IP; `idOf` names another one
 * (a serial's), and `current` must then hold only ids of that kind. `claimants` must be in
 * priority order (oldest first): render() sorts them by creation time, then namespace/name.
 */
export function settleClaims<C extends Claimant>(
  claimants: readonly C[],
  current: ReadonlyMap<string, Claim>,
  now: number,
  retentionMs: number,
  idOf: (c: C) => string = (c) => c.ip,
): SettledClaims<C> {
  const byId = new Map<string, C[]>();
  for (const c of claimants) {
    const list = byId.get(idOf(c));
    if (list) list.push(c);
    else byId.set(idOf(c), [c]);
  }
  const out: SettledClaims<C> = {
    holders: new Map(),
    losers: new Map(),
    ledger: new Map(),
    expired: [],
    nextExpiryMs: undefined,
  };
  for (const id of new Set([...current.keys(), ...byId.keys()])) {
    let claim = current.get(id);
    const wanting = byId.get(id) ?? [];
    if (claim?.vacantSince !== undefined && retentionMs > 0) {
      const since = Date.parse(claim.vacantSince);
      const left = (Number.isNaN(since) ? now : since) + retentionMs - now;
      const stillVacant = !wanting.some((c) => c.namespace === claim!.namespace);
      if (left <= 0 && stillVacant) {
        out.expired.push(id);
        claim = undefined;
      }
    }
    const holder = claim ? wanting.find((c) => c.namespace === claim!.namespace) : wanting[0];
    if (holder) out.holders.set(id, holder);
    for (const c of wanting)
      if (c !== holder)
        out.losers.set(c.key, {
          id,
          holder: c.namespace === holder?.namespace ? holder : null,
        });
    if (holder) out.ledger.set(id, { namespace: holder.namespace });
    else if (claim) {
      const vacantSince = claim.vacantSince ?? isoSeconds(now);
      out.ledger.set(id, { namespace: claim.namespace, vacantSince });
      if (retentionMs > 0) {
        const left = Date.parse(vacantSince) + retentionMs - now;
        out.nextExpiryMs = Math.max(0, Math.min(out.nextExpiryMs ?? Infinity, left));
      }
    }
  }
  return out;
}

/** The ConfigMap data key of a claim: `<ip>.claim` or `serial-<hex>.claim`, ConfigMap-safe. */
export function claimKeyOf(id: string): string {
  return configMapKeyOf(id + CLAIM_KEY_SUFFIX);
}

/** The claim id a stored key names (canonical), or null when it names no IP or serial. */
function claimIdOfKey(key: string): string | null {
  const name = fileNameOfConfigMapKey(key).slice(0, -CLAIM_KEY_SUFFIX.length);
  if (!isSerialClaimId(name)) return canonicalIp(name);
  const serial = canonicalSerial(name.slice(SERIAL_CLAIM_PREFIX.length));
  return serial === null ? null : serialClaimId(serial);
}

/** The stored text of a claim (a ConfigMap data value). */
export function formatClaim(c: Claim): string {
  return JSON.stringify(
    c.vacantSince
      ? { namespace: c.namespace, vacantSince: c.vacantSince }
      : { namespace: c.namespace },
  );
}

/** A stored claim, or null when the text is not one (ignored: the admin may have edited it). */
export function parseClaim(text: string): Claim | null {
  try {
    const v = JSON.parse(text) as { namespace?: unknown; vacantSince?: unknown };
    if (typeof v.namespace !== 'string' || !v.namespace) return null;
    if (v.vacantSince !== undefined && typeof v.vacantSince !== 'string') return null;
    return v.vacantSince
      ? { namespace: v.namespace, vacantSince: v.vacantSince }
      : { namespace: v.namespace };
  } catch {
    return null;
  }
}

/**
 * Reads the ledger back from the rendered shards. A claim in a current shard wins over
 * one left in a shard beyond --shards (not yet emptied after --shards was lowered);
 * entries that do not parse are ignored.
 */
export function readClaimLedger(
  shards: Iterable<{ name: string; data: Readonly<Record<string, string>> | undefined }>,
  isCurrent: (shardName: string) => boolean,
): Map<string, Claim> {
  const ledger = new Map<string, Claim>();
  const ordered = [...shards].sort((a, b) => Number(isCurrent(b.name)) - Number(isCurrent(a.name)));
  for (const shard of ordered)
    for (const [key, text] of Object.entries(shard.data ?? {})) {
      if (!key.endsWith(CLAIM_KEY_SUFFIX)) continue;
      const id = claimIdOfKey(key);
      const claim = id === null ? null : parseClaim(text);
      if (id !== null && claim && !ledger.has(id)) ledger.set(id, claim);
    }
  return ledger;
}
