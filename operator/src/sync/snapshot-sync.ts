/**
 * What the sync sidecar serves, and from where: the config dir (the dataplane's), its
 * snapshot marker (common/src/snapshot-marker.ts) and the copy kept on the node (node-snapshot.ts).
 *
 * - restore(), at start, before or without the API server: the node's copy into the config
 *   dir, then the marker with source "node". The dataplane serves it at once.
 * - applyApi(), for every complete listing of the operator's shards: the node's copy first,
 *   then the config dir, then the marker with source "api". In that order a crash between
 *   any two steps leaves a node copy at least as new as the config dir, so a restart never
 *   goes back further than what was served. The API's listing always wins over the node's
 *   copy: the API server is the truth, and the copy only stands in while it is away.
 */
import type { Logger } from 'pino';
import type { OperatorMetrics } from '../metrics.ts';
import type { ConfigDirWriter, SyncOutcome } from './config-dir-writer.ts';
import type { NodeSnapshotStore } from './node-snapshot.ts';

export interface ServedSnapshot {
  source: 'api' | 'node';
  resourceVersions: Record<string, string>;
  syncedAt: string;
}

export interface SnapshotSyncOptions {
  writer: ConfigDirWriter;
  /** The node's copy; undefined: none is kept (no --snapshot-dir). */
  store: NodeSnapshotStore | undefined;
  /** The rendered ConfigMaps' namespace: a copy taken from another one is not restored. */
  namespace: string;
  log: Logger;
  metrics: OperatorMetrics;
  now?: () => Date;
}

const versionsKey = (rvs: Record<string, string>) =>
  JSON.stringify(Object.entries(rvs).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

export class SnapshotSync {
  private servedNow: ServedSnapshot | undefined;
  /** The resourceVersions the node's copy holds, once known. */
  private savedKey: string | undefined;
  private lastSaveError = '';
  /** Why no node copy was restored: for the "no snapshot yet" log line. */
  nodeCopyState = 'not read yet';

  constructor(private readonly o: SnapshotSyncOptions) {}

  /** The snapshot in the config dir, marked complete; undefined before the first. */
  get served(): ServedSnapshot | undefined {
    return this.servedNow;
  }

  /** Serves the node's copy, if there is a usable one. Never throws for a bad copy. */
  async restore(): Promise<void> {
    const { store, log } = this.o;
    if (!store) {
      this.nodeCopyState = 'none kept (no --snapshot-dir)';
      return;
    }
    const loaded = await store.load();
    if (!loaded.ok) {
      this.nodeCopyState = loaded.reason;
      const fields = { snapshotDir: store.dir, reason: loaded.reason };
      if (loaded.missing) log.info(fields, 'No config snapshot on this node yet');
      else log.warn(fields, 'Node config snapshot not usable; waiting for the API server');
      return;
    }
    const s = loaded.snapshot;
    if (s.namespace !== this.o.namespace) {
      this.nodeCopyState = `taken from namespace ${s.namespace}, not ${this.o.namespace}`;
      log.warn(
        { snapshotDir: store.dir, snapshotNamespace: s.namespace, namespace: this.o.namespace },
        'Node config snapshot of another namespace not restored; waiting for the API server',
      );
      return;
    }
    this.savedKey = versionsKey(s.resourceVersions);
    const r = await this.o.writer.apply(new Map(Object.entries(s.files)));
    await this.mark({ source: 'node', resourceVersions: s.resourceVersions, syncedAt: s.syncedAt });
    this.nodeCopyState = 'restored';
    log.info(
      {
        snapshotDir: store.dir,
        files: Object.keys(s.files).length,
        ...r,
        shards: Object.keys(s.resourceVersions).length,
        syncedAt: s.syncedAt,
        ageSeconds: Math.round((this.now().getTime() - Date.parse(s.syncedAt)) / 1000),
      },
      'Node config snapshot restored; served until the API server is reached',
    );
  }

  /**
   * Serves a complete listing from the API server; null when it is the snapshot already
   * served from the API (nothing to do).
   */
  async applyApi(listing: {
    files: ReadonlyMap<string, string>;
    resourceVersions: Record<string, string>;
  }): Promise<SyncOutcome | null> {
    const key = versionsKey(listing.resourceVersions);
    const before = this.servedNow;
    if (before?.source === 'api' && versionsKey(before.resourceVersions) === key) return null;
    const syncedAt = this.now().toISOString();
    if (this.o.store && this.savedKey !== key) await this.save(listing, syncedAt, key);
    const r = await this.o.writer.apply(listing.files);
    await this.mark({ source: 'api', resourceVersions: listing.resourceVersions, syncedAt });
    if (before?.source !== 'api')
      this.o.log.info(
        {
          files: listing.files.size,
          shards: Object.keys(listing.resourceVersions).length,
          replaced: before ? 'node' : 'none',
          sameAsNode: before ? versionsKey(before.resourceVersions) === key : undefined,
        },
        'Config snapshot from the API server served',
      );
    return r;
  }

  private async save(
    listing: { files: ReadonlyMap<string, string>; resourceVersions: Record<string, string> },
    syncedAt: string,
    key: string,
  ): Promise<void> {
    const store = this.o.store!;
    try {
      await store.save({
        namespace: this.o.namespace,
        resourceVersions: listing.resourceVersions,
        syncedAt,
        files: Object.fromEntries(listing.files),
      });
      this.savedKey = key;
      this.o.metrics.syncNodeSnapshotWrites.inc({ result: 'success' });
      if (this.lastSaveError)
        this.o.log.info({ snapshotDir: store.dir }, 'Node config snapshot saved again');
      this.lastSaveError = '';
    } catch (err) {
      // The configs are still served; only a restart with the API server down would go
      // back to the older copy (or to none). Logged once per distinct error.
      this.o.metrics.syncNodeSnapshotWrites.inc({ result: 'error' });
      const message = (err as Error).message;
      if (message !== this.lastSaveError)
        this.o.log.error(
          { snapshotDir: store.dir, err: message, code: (err as NodeJS.ErrnoException).code },
          'Node config snapshot not saved; a restart without the API server would serve an older one',
        );
      this.lastSaveError = message;
    }
  }

  private async mark(s: ServedSnapshot): Promise<void> {
    await this.o.writer.writeMarker({ complete: true, ...s });
    this.servedNow = s;
  }

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }
}
