/**
 * The resources the fake API server serves and the per-kind rules the real one applies:
 * MicroTime fields on Leases and events.k8s.io Events, ConfigMap key and size limits,
 * cluster-scoped Namespaces, CRD schemas (namespaced or cluster-scoped) from crds/.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCrd, type CrdInfo } from './crd-validator.ts';

export interface ResourceDef extends CrdInfo {
  /** `group/version/plural` ('' group for core): the storage key. */
  id: string;
  /** Custom resources carry metadata.generation, bumped on spec change. */
  hasGeneration: boolean;
  /** Problems that the real server reports as a decode error (400); validate() gives 422. */
  decodeProblems: (obj: Record<string, unknown>) => string[];
}

const MICROTIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const CONFIGMAP_KEY = /^[-._a-zA-Z0-9]+$/;
export const MAX_CONFIGMAP_BYTES = 1024 * 1024;

function microTimeProblems(obj: Record<string, unknown>, path: string[]): string[] {
  let v: unknown = obj;
  for (const p of path) v = (v as Record<string, unknown> | undefined)?.[p];
  if (v === undefined || v === null) return [];
  return typeof v === 'string' && MICROTIME.test(v)
    ? []
    : [
        `${path.join('.')}: MicroTime needs 6 fractional digits (RFC3339 micro), got ${JSON.stringify(v)}`,
      ];
}

function builtin(
  group: string,
  version: string,
  plural: string,
  kind: string,
  extra: Partial<ResourceDef> = {},
): ResourceDef {
  return {
    id: `${group}/${version}/${plural}`,
    group,
    version,
    plural,
    kind,
    namespaced: true,
    statusSubresource: false,
    hasGeneration: false,
    validate: () => [],
    decodeProblems: () => [],
    ...extra,
  };
}

function configMapProblems(obj: Record<string, unknown>): string[] {
  const data = (obj.data ?? {}) as Record<string, unknown>;
  const problems = Object.keys(data)
    .filter((k) => !CONFIGMAP_KEY.test(k))
    .map(
      (k) =>
        `data[${k}]: a valid config key must consist of alphanumeric characters, '-', '_' or '.'`,
    );
  const size = Object.entries(data).reduce(
    (n, [k, v]) => n + k.length + Buffer.byteLength(String(v)),
    0,
  );
  if (size > MAX_CONFIGMAP_BYTES)
    problems.push(`[]: Too long: must have at most ${MAX_CONFIGMAP_BYTES} bytes`);
  return problems;
}

export function defaultResources(crdDir: string): ResourceDef[] {
  const defs = [
    builtin('', 'v1', 'configmaps', 'ConfigMap', { validate: configMapProblems }),
    // Cluster-scoped; objects in other resources do not need their Namespace to exist
    // (the real server's NamespaceLifecycle admission is not modelled).
    builtin('', 'v1', 'namespaces', 'Namespace', { namespaced: false }),
    builtin('', 'v1', 'events', 'Event'),
    builtin('events.k8s.io', 'v1', 'events', 'Event', {
      decodeProblems: (o) => microTimeProblems(o, ['eventTime']),
    }),
    builtin('coordination.k8s.io', 'v1', 'leases', 'Lease', {
      decodeProblems: (o) => [
        ...microTimeProblems(o, ['spec', 'renewTime']),
        ...microTimeProblems(o, ['spec', 'acquireTime']),
      ],
    }),
  ];
  for (const f of readdirSync(crdDir).filter((n) => /\.ya?ml$/.test(n))) {
    const crd = loadCrd(join(crdDir, f));
    defs.push({
      ...crd,
      id: `${crd.group}/${crd.version}/${crd.plural}`,
      hasGeneration: true,
      decodeProblems: () => [],
    });
  }
  return defs;
}

export const REPO_CRD_DIR = fileURLToPath(new URL('../../../crds', import.meta.url));
