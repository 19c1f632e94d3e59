/**
 * The sidecar's half of the snapshot contract with the dataplane's `--require-snapshot`
 * (dataplane/src/config/snapshot-gate.ts): once every config file of a complete snapshot
 * is in the config dir, `.rtftp-snapshot.json` is written (temp file + rename) saying so.
 * Until the first one exists the dataplane answers no request and is not ready.
 */
export const SNAPSHOT_MARKER = '.rtftp-snapshot.json';

export interface SnapshotMarker {
  complete: true;
  /** The API server's listing, or the copy kept on the node. */
  source: 'api' | 'node';
  /** The shards (rendered ConfigMaps) of the snapshot and their resourceVersions. */
  resourceVersions: Record<string, string>;
  /** When the snapshot was complete (for a node copy: when it was taken from the API). */
  syncedAt: string;
}

export function markerText(m: SnapshotMarker): string {
  return (
    JSON.stringify({
      complete: m.complete,
      source: m.source,
      resourceVersions: m.resourceVersions,
      syncedAt: m.syncedAt,
    }) + '\n'
  );
}
