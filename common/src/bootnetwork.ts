/**
 * The BootNetwork resource (cluster-scoped, owned by the cluster admin): which namespaces
 * may claim which client IPs, and which NBD servers the dataplane may reach for those
 * clients. Its schema is in bootnetwork-schema.ts; how it admits a BootClient is in
 * bootnetwork-admission.ts. Here: the types and the compiled, checked form.
 */
import { BOOTCLIENT_GROUP, BOOTCLIENT_VERSION, type Condition } from './bootclient.ts';
import { CidrSet, parseCidr, type Cidr } from './cidr.ts';
import {
  labelSelectorProblems,
  matchesLabelSelector,
  type LabelSelector,
} from './label-selector.ts';
import { normaliseSocketPath, type PortRange, type TargetRule } from './nbd-target-policy.ts';
import { isRecord } from './json-shape.ts';

export const BOOTNETWORK_GROUP = BOOTCLIENT_GROUP;
export const BOOTNETWORK_VERSION = BOOTCLIENT_VERSION;
export const BOOTNETWORK_API_VERSION = `${BOOTNETWORK_GROUP}/${BOOTNETWORK_VERSION}`;
export const BOOTNETWORK_KIND = 'BootNetwork';
export const BOOTNETWORK_PLURAL = 'bootnetworks';

/** Bounds the schema enforces, and the operator again. */
export const MAX_BOOTNETWORK_ITEMS = 256;

export interface BootNetworkSpec {
  clientCIDRs: string[];
  namespaces?: { names?: string[]; namespaceSelector?: LabelSelector };
  nbdServers?: { cidr: string; ports?: { port: number; endPort?: number }[] }[];
  unixSockets?: string[];
}

export interface BootNetworkStatus {
  observedGeneration?: number;
  conditions?: Condition[];
}

export interface BootNetwork {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
  };
  /** Unknown until compiled: the schema checks shapes, not that a CIDR is one. */
  spec: unknown;
  status?: BootNetworkStatus;
}

/** A BootNetwork whose spec checked out: what admission reads. */
export interface CompiledBootNetwork {
  name: string;
  clientCidrs: CidrSet;
  namespaceNames: ReadonlySet<string>;
  namespaceSelector: LabelSelector | undefined;
  nbdServers: readonly TargetRule[];
  unixSockets: readonly string[];
}

export type BootNetworkCompilation =
  { ok: true; network: CompiledBootNetwork } | { ok: false; problems: string[] };

function list(v: unknown, field: string, problems: string[]): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    problems.push(`${field}: must be a list`);
    return [];
  }
  if (v.length > MAX_BOOTNETWORK_ITEMS)
    problems.push(`${field}: at most ${MAX_BOOTNETWORK_ITEMS} entries`);
  return v;
}

function cidrs(v: unknown, field: string, problems: string[]): Cidr[] {
  const out: Cidr[] = [];
  list(v, field, problems).forEach((text, i) => {
    const r = typeof text === 'string' ? parseCidr(text) : null;
    if (r?.ok) out.push(r.cidr);
    else problems.push(`${field}[${i}]: ${r ? r.error : 'must be a string'}`);
  });
  return out;
}

function portRanges(v: unknown, field: string, problems: string[]): PortRange[] {
  const out: PortRange[] = [];
  list(v, field, problems).forEach((p, i) => {
    const f = `${field}[${i}]`;
    const rec = isRecord(p) ? p : {};
    const from = rec.port;
    const to = rec.endPort ?? from;
    const valid = (n: unknown): n is number =>
      typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
    if (!valid(from) || !valid(to) || to < from)
      problems.push(`${f}: port (and endPort, not below it) must be 1..65535`);
    else out.push({ from, to });
  });
  return out;
}

/**
 * Checks a spec completely and compiles it. A BootNetwork with any problem admits nothing
 * (fail closed): half a rule set could admit more than the admin meant.
 */
export function compileBootNetwork(bn: BootNetwork): BootNetworkCompilation {
  const problems: string[] = [];
  const spec = isRecord(bn.spec) ? bn.spec : {};
  if (!isRecord(bn.spec)) problems.push('spec: missing');
  const clientCidrs = cidrs(spec.clientCIDRs, 'spec.clientCIDRs', problems);
  if (clientCidrs.length === 0 && !problems.length)
    problems.push('spec.clientCIDRs: needs at least one block');

  const ns = isRecord(spec.namespaces) ? spec.namespaces : {};
  if (spec.namespaces !== undefined && !isRecord(spec.namespaces))
    problems.push('spec.namespaces: must be an object');
  const names: string[] = [];
  list(ns.names, 'spec.namespaces.names', problems).forEach((n, i) => {
    if (typeof n === 'string') names.push(n);
    else problems.push(`spec.namespaces.names[${i}]: must be a string`);
  });
  let namespaceSelector: LabelSelector | undefined;
  if (ns.namespaceSelector !== undefined) {
    const bad = labelSelectorProblems(ns.namespaceSelector, 'spec.namespaces.namespaceSelector');
    if (bad.length) problems.push(...bad);
    else namespaceSelector = ns.namespaceSelector as LabelSelector;
  }
  if (names.length === 0 && ns.namespaceSelector === undefined)
    problems.push(
      'spec.namespaces: name the namespaces (names) or select them (namespaceSelector)',
    );

  const nbdServers: TargetRule[] = [];
  list(spec.nbdServers, 'spec.nbdServers', problems).forEach((s, i) => {
    const f = `spec.nbdServers[${i}]`;
    const rec = isRecord(s) ? s : {};
    const [cidr] = cidrs([rec.cidr], `${f}.cidr`, problems);
    const ports = portRanges(rec.ports, `${f}.ports`, problems);
    if (cidr) nbdServers.push({ cidr, ports });
  });
  const unixSockets: string[] = [];
  list(spec.unixSockets, 'spec.unixSockets', problems).forEach((p, i) => {
    const path = typeof p === 'string' ? normaliseSocketPath(p) : null;
    if (path === null) problems.push(`spec.unixSockets[${i}]: must be an absolute path`);
    else unixSockets.push(path);
  });

  if (problems.length) return { ok: false, problems };
  return {
    ok: true,
    network: {
      name: bn.metadata.name,
      clientCidrs: new CidrSet(clientCidrs),
      namespaceNames: new Set(names),
      namespaceSelector,
      nbdServers,
      unixSockets,
    },
  };
}

/** Whether the BootNetwork lets `namespace` (with these labels) claim through it. */
export function admitsNamespace(
  n: CompiledBootNetwork,
  namespace: string,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  if (n.namespaceNames.has(namespace)) return true;
  return Boolean(
    n.namespaceSelector && labels && matchesLabelSelector(n.namespaceSelector, labels),
  );
}
