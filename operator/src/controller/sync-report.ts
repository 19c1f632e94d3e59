/**
 * What each sync sidecar tells the operator: the shard resourceVersions it has applied to
 * its node's config dir, in a per-node `coordination.k8s.io/v1` Lease that it renews, so
 * a dead node's report goes stale. The one definition of that Lease, for both ends: the
 * sidecar builds it (kube/sync-report-lease.ts writes it), the operator reads it back
 * (readSyncReport) for the Ready condition (ready.ts).
 *
 *   metadata.name                           rtftp-sync-<node name>
 *   metadata.labels[rtftp.io/sync-report]   "true" (the operator lists by it)
 *   annotations[rtftp.io/node]              the node name
 *   annotations[rtftp.io/applied-resource-versions]  {"rtftp-configs-00": "<rv>", ...}
 *   annotations[rtftp.io/snapshot-source]   api | node | none
 *   spec.holderIdentity                     the pod name
 *   spec.leaseDurationSeconds, renewTime    the report is stale once not renewed for that long
 */
import { createHash } from 'node:crypto';
import { isStringRecord } from '../../../common/src/json-shape.ts';

export const SYNC_REPORT_LABEL = 'rtftp.io/sync-report';
export const SYNC_REPORT_SELECTOR = `${SYNC_REPORT_LABEL}=true`;
export const NODE_ANNOTATION = 'rtftp.io/node';
export const APPLIED_ANNOTATION = 'rtftp.io/applied-resource-versions';
export const SOURCE_ANNOTATION = 'rtftp.io/snapshot-source';
export const SYNC_REPORT_PREFIX = 'rtftp-sync-';
/** A Lease name is a DNS subdomain: at most 253 characters. */
const MAX_NAME = 253;
/** Bigger annotations are refused: 256 shards of 20-character resourceVersions need ~10 KiB. */
const MAX_APPLIED_BYTES = 64 * 1024;

/** Where the served snapshot came from; `none` before the first complete one. */
export type ReportSource = 'api' | 'node' | 'none';

/**
 * The Lease name of a node's report. Node names are DNS subdomains, so the prefixed name
 * is one too; a name too long for the prefix keeps its start and gets a hash of the whole.
 */
export function syncReportLeaseName(nodeName: string): string {
  const name = SYNC_REPORT_PREFIX + nodeName;
  if (name.length <= MAX_NAME) return name;
  const hash = createHash('sha256').update(nodeName).digest('hex').slice(0, 10);
  return `${name.slice(0, MAX_NAME - hash.length - 1).replace(/[-.]+$/, '')}-${hash}`;
}

export interface SyncReportInput {
  nodeName: string;
  holderIdentity: string;
  leaseDurationSeconds: number;
  applied: Readonly<Record<string, string>>;
  source: ReportSource;
  /** MicroTime (RFC 3339 with 6 fractional digits), as the API server requires for Leases. */
  renewTime: string;
}

/** RFC 3339 with microseconds: a Lease's renewTime is a MicroTime. */
export function microTime(ms: number = Date.now()): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}

/** The Lease's fields the sidecar writes (a merge patch, or the body of a create). */
export function syncReportLease(r: SyncReportInput) {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name: syncReportLeaseName(r.nodeName),
      labels: { [SYNC_REPORT_LABEL]: 'true' },
      annotations: {
        [NODE_ANNOTATION]: r.nodeName,
        [APPLIED_ANNOTATION]: JSON.stringify(sortedRecord(r.applied)),
        [SOURCE_ANNOTATION]: r.source,
      },
    },
    spec: {
      holderIdentity: r.holderIdentity,
      leaseDurationSeconds: r.leaseDurationSeconds,
      renewTime: r.renewTime,
    },
  };
}

function sortedRecord(r: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The Lease as the operator's informer sees it. */
export interface LeaseObject {
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
  };
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    renewTime?: string | Date;
  };
}

export interface SyncReport {
  node: string;
  holder: string;
  /** Shard name → the resourceVersion this node's sidecar has applied. */
  applied: ReadonlyMap<string, string>;
  source: ReportSource;
  leaseDurationSeconds: number;
  /** Milliseconds since the epoch by the sidecar's clock; NaN when absent. */
  renewTimeMs: number;
}

export type ReportRead = { ok: true; report: SyncReport } | { ok: false; reason: string };

/** Reads a report back; the reason names the first field that is wrong. */
export function readSyncReport(lease: LeaseObject): ReportRead {
  const a = lease.metadata?.annotations ?? {};
  const node = a[NODE_ANNOTATION];
  if (!node) return { ok: false, reason: `no ${NODE_ANNOTATION} annotation` };
  const raw = a[APPLIED_ANNOTATION];
  if (raw === undefined) return { ok: false, reason: `no ${APPLIED_ANNOTATION} annotation` };
  if (raw.length > MAX_APPLIED_BYTES)
    return { ok: false, reason: `${APPLIED_ANNOTATION} larger than ${MAX_APPLIED_BYTES} bytes` };
  let applied: unknown;
  try {
    applied = JSON.parse(raw);
  } catch {
    return { ok: false, reason: `${APPLIED_ANNOTATION} is not JSON` };
  }
  if (!isStringRecord(applied))
    return { ok: false, reason: `${APPLIED_ANNOTATION} is not an object of strings` };
  const source = a[SOURCE_ANNOTATION];
  if (source !== 'api' && source !== 'node' && source !== 'none')
    return { ok: false, reason: `${SOURCE_ANNOTATION} is not api, node or none` };
  const duration = lease.spec?.leaseDurationSeconds;
  if (typeof duration !== 'number' || !Number.isInteger(duration) || duration < 1)
    return { ok: false, reason: 'spec.leaseDurationSeconds is not a positive integer' };
  const renew = lease.spec?.renewTime;
  return {
    ok: true,
    report: {
      node,
      holder: lease.spec?.holderIdentity ?? '',
      applied: new Map(Object.entries(applied)),
      source,
      leaseDurationSeconds: duration,
      renewTimeMs: renew === undefined ? NaN : new Date(renew).getTime(),
    },
  };
}

/** Whether two reports say the same thing (a renewal alone changes nothing the operator computes). */
export function sameReport(a: SyncReport, b: SyncReport): boolean {
  if (a.node !== b.node || a.holder !== b.holder || a.source !== b.source) return false;
  if (a.applied.size !== b.applied.size) return false;
  for (const [shard, rv] of a.applied) if (b.applied.get(shard) !== rv) return false;
  return a.leaseDurationSeconds === b.leaseDurationSeconds;
}
