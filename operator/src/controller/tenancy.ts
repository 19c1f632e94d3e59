/**
 * What render() needs to admit tenants, gathered from the informer caches (pure):
 * BootNetworks compiled (and their status), namespace labels, the reserved ranges, and
 * the hostnames whose DNS answers admission needs.
 */
import type { BootClient } from '../../../common/src/bootclient.ts';
import {
  compileBootNetwork,
  type BootNetwork,
  type CompiledBootNetwork,
} from '../../../common/src/bootnetwork.ts';
import type { Cidr } from '../../../common/src/cidr.ts';
import { canonicalIp } from '../../../common/src/ip.ts';
import { BUILTIN_RESERVED, type ReservedRange } from '../../../common/src/nbd-target-policy.ts';
import type { DesiredStatus, SpecValidator } from './render.ts';

export interface CompiledNetworks {
  /** Valid BootNetworks, by name: only these admit anything. */
  networks: CompiledBootNetwork[];
  /** BootNetwork name → its desired status. */
  statuses: Map<string, DesiredStatus>;
  /** Some valid BootNetwork selects namespaces by label: namespace labels are needed. */
  usesNamespaceSelector: boolean;
}

export function compileNetworks(bootNetworks: Iterable<BootNetwork>): CompiledNetworks {
  const out: CompiledNetworks = { networks: [], statuses: new Map(), usesNamespaceSelector: false };
  const live = [...bootNetworks]
    .filter((bn) => !bn.metadata.deletionTimestamp)
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  for (const bn of live) {
    const c = compileBootNetwork(bn);
    const observedGeneration = bn.metadata.generation ?? 0;
    if (c.ok) {
      out.networks.push(c.network);
      if (c.network.namespaceSelector) out.usesNamespaceSelector = true;
    }
    out.statuses.set(bn.metadata.name, {
      observedGeneration,
      conditions: [
        c.ok
          ? { type: 'Accepted', status: 'True', reason: 'Valid', message: 'spec is valid' }
          : {
              type: 'Accepted',
              status: 'False',
              reason: 'Invalid',
              message: `admits nothing until fixed: ${c.problems.join('; ')}`,
            },
      ],
    });
  }
  return out;
}

/** The ranges refused unless a BootNetwork names them: built-in plus the cluster's. */
export function reservedRanges(serviceCidrs: readonly Cidr[], podCidrs: readonly Cidr[]) {
  const out: ReservedRange[] = [...BUILTIN_RESERVED];
  for (const cidr of serviceCidrs) out.push({ name: "the cluster's Service CIDR", cidr });
  for (const cidr of podCidrs) out.push({ name: "the cluster's Pod CIDR", cidr });
  return out;
}

/** Hostnames in the NBD URLs of BootClients that admission will check. */
export function hostnamesToResolve(
  bootClients: Iterable<BootClient>,
  trusted: (namespace: string) => boolean,
  validate: SpecValidator,
): Set<string> {
  const hosts = new Set<string>();
  for (const bc of bootClients) {
    if (bc.metadata.deletionTimestamp || trusted(bc.metadata.namespace)) continue;
    const v = validate(bc);
    if (v.ok && v.endpoint.transport === 'tcp' && canonicalIp(v.endpoint.host) === null)
      hosts.add(v.endpoint.host);
  }
  return hosts;
}
