/**
 * The config snapshot marker: the contract between the sync sidecar, which writes
 * `<config-dir>/.rtftp-snapshot.json` (temp file + rename) once every config file of a
 * complete snapshot is in place, and the dataplane's `--require-snapshot`
 * (dataplane/src/config/snapshot-gate.ts), which answers no request until one says
 * complete. One definition for both sides, like the `.nbd` format (nbd-config.ts).
 */
import { isRecord, isStringRecord, isTimeString } from './json-shape.ts';

export const SNAPSHOT_MARKER = '.rtftp-snapshot.json';

export interface SnapshotMarker {
  complete: boolean;
  /** Where the sidecar took the snapshot from: the API server, or the copy kept on the node. */
  source: 'api' | 'node';
  /** The rendered ConfigMaps (shards) of the snapshot and their resourceVersions. */
  resourceVersions: Record<string, string>;
  /** When the snapshot was complete, ISO 8601. */
  syncedAt: string;
}

export type MarkerParse = { ok: true; marker: SnapshotMarker } | { ok: false; reason: string };

/** Checks a marker's text against the contract; the reason names the first bad field. */
export function parseSnapshotMarker(text: string): MarkerParse {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (!isRecord(v)) return { ok: false, reason: 'not a JSON object' };
  if (typeof v.complete !== 'boolean') return { ok: false, reason: 'complete: not a boolean' };
  if (v.source !== 'api' && v.source !== 'node')
    return { ok: false, reason: 'source: not "api" or "node"' };
  if (!isStringRecord(v.resourceVersions))
    return { ok: false, reason: 'resourceVersions: not an object of strings' };
  if (!isTimeString(v.syncedAt)) return { ok: false, reason: 'syncedAt: not an ISO time' };
  return {
    ok: true,
    marker: {
      complete: v.complete,
      source: v.source,
      resourceVersions: v.resourceVersions,
      syncedAt: v.syncedAt,
    },
  };
}

/** The marker's file text, as the sidecar writes it (fields in a fixed order). */
export function renderSnapshotMarker(m: SnapshotMarker): string {
  return (
    JSON.stringify({
      complete: m.complete,
      source: m.source,
      resourceVersions: m.resourceVersions,
      syncedAt: m.syncedAt,
    }) + '\n'
  );
}
