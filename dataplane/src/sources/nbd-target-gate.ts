/**
 * The dataplane's check before every NBD connect, for both backends (native:
 * connect-native.ts; libguestfs: nbd/guestfs-connector.ts): defence in depth behind the
 * operator's admission, since the dataplane connects from the node's network namespace,
 * where no NetworkPolicy applies.
 *
 * A target must be allowed by `--nbd-allow` (when given) and by the config's own
 * `nbd_allow` (when present: the operator renders the BootNetwork's allow-list there), under
 * the rules of common/src/nbd-target-policy.ts: loopback, link-local, this host and the
 * `--nbd-deny` ranges only when an entry inside them names them; unix sockets only when
 * listed. A hostname is resolved here, every address it resolves to is checked, and the
 * connect goes to a checked address (never to the name again), so DNS cannot change
 * between check and use. A refused target is a DiskError with reason 'not-permitted': no
 * connection is attempted, the slot reports it in /status and retries it only on request.
 *
 * With neither rule (standalone `rtftp --root` without the flag, a hand-written config)
 * the endpoint is returned unchanged and nothing is looked up: exactly as before.
 */
import { canonicalIp } from '../../../common/src/ip.ts';
import type { NbdConfig, NbdEndpoint } from '../../../common/src/nbd-config.ts';
import {
  BUILTIN_RESERVED,
  NbdTargetPolicy,
  checkEndpoint,
  normaliseSocketPath,
  type ReservedRange,
  type TargetRefusal,
} from '../../../common/src/nbd-target-policy.ts';
import { HostLookupError, lookupAddresses } from '../../../common/src/resolve-host.ts';
import { DiskError } from './disk-session.ts';

export const NOT_PERMITTED_CODE = 'RTFTP_ERR_NBD_NOT_PERMITTED';

export interface NbdTargetGateOptions {
  /** `--nbd-allow`; undefined when the flag was not given. */
  allow?: NbdTargetPolicy | undefined;
  /** Ranges refused unless named (BUILTIN_RESERVED plus `--nbd-deny`), for `nbd_allow` lists too. */
  reserved?: readonly ReservedRange[];
  /** DNS, replaceable in tests. */
  lookup?: (host: string) => Promise<string[]>;
  /** Told of each refusal (rtftp_nbd_targets_refused_total). */
  onRefused?: (rule: TargetRefusal) => void;
}

export class NbdTargetGate {
  private readonly reserved: readonly ReservedRange[];
  private readonly perConfig = new WeakMap<readonly string[], NbdTargetPolicy>();

  constructor(private readonly o: NbdTargetGateOptions = {}) {
    this.reserved = o.reserved ?? o.allow?.reserved ?? BUILTIN_RESERVED;
  }

  private policiesFor(config: NbdConfig): NbdTargetPolicy[] {
    const out: NbdTargetPolicy[] = [];
    if (this.o.allow) out.push(this.o.allow);
    if (config.nbdAllow) {
      let p = this.perConfig.get(config.nbdAllow);
      if (!p) {
        p = NbdTargetPolicy.parse(config.nbdAllow, this.reserved);
        this.perConfig.set(config.nbdAllow, p);
      }
      out.push(p);
    }
    return out;
  }

  /**
   * The endpoints a connect may use for this config, each a checked address (or socket
   * path), in resolver order; rejects with a DiskError when the target is not permitted.
   */
  async admit(config: NbdConfig): Promise<NbdEndpoint[]> {
    const policies = this.policiesFor(config);
    const e = config.endpoint;
    if (policies.length === 0) return [e];
    let addresses: string[] = [];
    if (e.transport === 'tcp') {
      const literal = canonicalIp(e.host);
      addresses = literal !== null ? [literal] : await this.lookup(e.host);
    }
    const answer = { addresses };
    for (const policy of policies) {
      const c = checkEndpoint(policy, e, () => answer);
      if (!c.ok) {
        this.o.onRefused?.(c.rule);
        const which = policy === this.o.allow ? '--nbd-allow' : "the config's nbd_allow";
        throw new DiskError(
          NOT_PERMITTED_CODE,
          'not-permitted',
          `url: NBD target not permitted by ${which}: ${c.message}; no connection was attempted`,
        );
      }
    }
    if (e.transport === 'unix') return [{ ...e, socket: normaliseSocketPath(e.socket)! }];
    return addresses.map((host) => ({ ...e, host }));
  }

  private async lookup(host: string): Promise<string[]> {
    try {
      return await (this.o.lookup ?? lookupAddresses)(host);
    } catch (err) {
      const code = err instanceof HostLookupError ? err.code : 'ELOOKUP';
      // The server may come back (a DNS outage): retried like an unreachable server.
      throw new DiskError('RTFTP_ERR_NBD_LOOKUP', 'connection-refused', `url: ${host}: ${code}`, {
        cause: err,
      });
    }
  }
}

/** The gate with no --nbd-allow: only a config's own `nbd_allow`, when it has one. */
export const CONFIG_ONLY_GATE = new NbdTargetGate();
