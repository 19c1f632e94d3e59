/**
 * Admission of a tenant's BootClient: it renders only when one set of BootNetworks admits
 * all of it, in this order (the first rule that fails is the one the status names):
 *   1. namespace: a BootNetwork names the BootClient's namespace or selects it by label;
 *   2. client IP: one of those BootNetworks holds `spec.ip` in its clientCIDRs;
 *   3. NBD target: the target is allowed by the nbdServers / unixSockets of the
 *      BootNetworks that passed 2, with the reserved ranges (loopback, link-local, this
 *      host, the cluster's Service and Pod CIDRs) refused unless an entry inside them
 *      names them (nbd-target-policy.ts); a hostname must resolve, and every address it
 *      resolves to must be allowed.
 * Pure: namespace labels and DNS answers come in from the shell. Messages name only the
 * BootClient's own fields, its own namespace and the BootNetworks that admit that
 * namespace: never another tenant's objects.
 *
 * The admitted client carries `nbdAllow`, the allow-list it was admitted under, which the
 * operator renders into its `<ip>.nbd` and the dataplane checks again at connect time.
 */
import { admitsNamespace, type CompiledBootNetwork } from './bootnetwork.ts';
import type { NbdEndpoint } from './nbd-config.ts';
import {
  NbdTargetPolicy,
  checkEndpoint,
  type ReservedRange,
  type ResolvedHost,
} from './nbd-target-policy.ts';

export type { ResolvedHost };

export interface AdmissionContext {
  /** Valid BootNetworks only (invalid ones admit nothing). */
  networks: readonly CompiledBootNetwork[];
  /** Labels of a namespace; undefined when unknown (no namespaceSelector can match it). */
  namespaceLabels(namespace: string): Readonly<Record<string, string>> | undefined;
  /** Every range refused unless named explicitly: BUILTIN_RESERVED plus the cluster's. */
  reserved: readonly ReservedRange[];
  /** The DNS answer for a hostname; undefined when not looked up (yet). */
  resolved(host: string): ResolvedHost | undefined;
}

export type AdmissionRule = 'namespace' | 'client-ip' | 'nbd-target';

export type Admission =
  | { ok: true; nbdAllow: string[]; networks: string[] }
  | { ok: false; rule: AdmissionRule; message: string };

const names = (ns: readonly CompiledBootNetwork[]) => ns.map((n) => n.name).join(', ');

/** The policy a set of BootNetworks grants for their clients' NBD targets. */
export function targetPolicyOf(
  networks: readonly CompiledBootNetwork[],
  reserved: readonly ReservedRange[],
): NbdTargetPolicy {
  return new NbdTargetPolicy(
    networks.flatMap((n) => n.nbdServers),
    [...new Set(networks.flatMap((n) => n.unixSockets))],
    reserved,
  );
}

/** Policies by the set of BootNetworks granting them, per context (one render). */
const policies = new WeakMap<AdmissionContext, Map<string, NbdTargetPolicy>>();

function policyFor(ctx: AdmissionContext, networks: readonly CompiledBootNetwork[]) {
  let byNames = policies.get(ctx);
  if (!byNames) policies.set(ctx, (byNames = new Map()));
  const key = names(networks);
  let p = byNames.get(key);
  if (!p) byNames.set(key, (p = targetPolicyOf(networks, ctx.reserved)));
  return p;
}

export function admitBootClient(
  ctx: AdmissionContext,
  client: { namespace: string; ip: string; endpoint: NbdEndpoint },
): Admission {
  const { namespace, ip } = client;
  const labels = ctx.namespaceLabels(namespace);
  const forNamespace = ctx.networks.filter((n) => admitsNamespace(n, namespace, labels));
  if (forNamespace.length === 0)
    return {
      ok: false,
      rule: 'namespace',
      message: `no BootNetwork admits namespace ${namespace}: ask the cluster admin for one`,
    };
  const forIp = forNamespace.filter((n) => n.clientCidrs.contains(ip));
  if (forIp.length === 0)
    return {
      ok: false,
      rule: 'client-ip',
      message: `spec.ip: ${ip} is outside the clientCIDRs of the BootNetworks admitting namespace ${namespace} (${names(forNamespace)})`,
    };
  const policy = policyFor(ctx, forIp);
  const target = checkEndpoint(policy, client.endpoint, (h) => ctx.resolved(h));
  if (!target.ok)
    return {
      ok: false,
      rule: 'nbd-target',
      message: `spec.nbd.url: not an NBD server that BootNetwork ${names(forIp)} allows for ${ip}: ${target.message}`,
    };
  return { ok: true, nbdAllow: policy.entries(), networks: forIp.map((n) => n.name) };
}
