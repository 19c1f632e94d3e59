/**
 * The config snapshot gate (`--require-snapshot`): in Kubernetes the `<ip>.nbd` configs
 * reach the dataplane through the sync sidecar, which fills the config dir after the pod
 * starts. A client that asked in that window would fall through to `default/` and boot the
 * wrong kernel. So until the sidecar declares a complete snapshot, the dataplane answers
 * no read request at all (the firmware retries) and reports not-ready.
 *
 * The contract with the sidecar: after every config file of a complete snapshot is in
 * place, it writes `<config-dir>/.rtftp-snapshot.json` atomically (temp file + rename):
 *
 *   {"complete": true, "source": "api" | "node",
 *    "resourceVersions": {"<configmap name>": "<rv>", ...}, "syncedAt": "<ISO time>"}
 *
 * The gate opens at the first marker that says complete, and stays open for the life of
 * the process: a later marker that is missing, unreadable or incomplete is logged and the
 * last complete one stays served (a sidecar mid-restart must not take boots down).
 *
 * No race between the marker and the configs: work registered with `runBeforeOpen` (the
 * config watcher's first full scan, disk-sources.ts) runs after the marker was read and
 * before the gate opens, so every config written before the marker is known to the
 * server before any request is admitted.
 */
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { open } from 'node:fs/promises';
import type { RemoteInfo } from 'node:dgram';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  SNAPSHOT_MARKER,
  parseSnapshotMarker,
  type MarkerParse,
  type SnapshotMarker,
} from '../../../common/src/snapshot-marker.ts';
import type { DataplaneMetrics } from '../metrics.ts';

/** A marker names one resourceVersion per shard (at most 256): far below this. */
export const MAX_MARKER_BYTES = 1024 * 1024;
/** The reason label of dropped requests and their log lines. */
export const SNAPSHOT_PENDING = 'snapshot-pending';

/** Reads the marker: its parse, or why there is none. Never throws. */
export async function readSnapshotMarker(dir: string): Promise<MarkerParse> {
  let handle;
  try {
    handle = await open(join(dir, SNAPSHOT_MARKER), 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ENOENT' ? 'missing' : `unreadable (${code})` };
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) return { ok: false, reason: 'not a regular file' };
    if (st.size > MAX_MARKER_BYTES) return { ok: false, reason: `larger than ${MAX_MARKER_BYTES}` };
    return parseSnapshotMarker(await handle.readFile('utf8'));
  } catch (err) {
    return { ok: false, reason: `unreadable (${(err as NodeJS.ErrnoException).code})` };
  } finally {
    await handle.close();
  }
}

export type GateState = 'waiting' | 'opening' | 'serving';

export interface SnapshotGateStatus {
  required: true;
  state: GateState;
  /** The marker as last read: "ok", or why it was not used. */
  marker: string;
  source?: SnapshotMarker['source'];
  resourceVersions?: Record<string, string>;
  syncedAt?: string;
  ageSeconds?: number;
}

export interface SnapshotGateOptions {
  dir: string;
  logger: Logger;
  metrics: DataplaneMetrics;
  /** Safety-net poll of the marker, besides inotify (default 1 s). */
  pollMs?: number;
}

export class SnapshotGate {
  private stateNow: GateState = 'waiting';
  private served: SnapshotMarker | undefined;
  private lastReason = '';
  private readonly beforeOpen: (() => Promise<void>)[] = [];
  private watcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private checkAgain = false;
  private stopped = false;

  constructor(private readonly opts: SnapshotGateOptions) {}

  get open(): boolean {
    return this.stateNow === 'serving';
  }

  /**
   * Work that must see the whole snapshot before any request does. Register before
   * `start()`; it runs once, after the first complete marker is read, before the gate opens.
   */
  runBeforeOpen(work: () => Promise<void>): void {
    this.beforeOpen.push(work);
  }

  /** Reads the marker once (the gate may open before this resolves), then watches it. */
  async start(): Promise<void> {
    this.opts.logger.info(
      { dir: this.opts.dir, marker: SNAPSHOT_MARKER },
      'Waiting for a complete config snapshot; requests get no reply until then',
    );
    this.pollTimer = setInterval(() => void this.check(), this.opts.pollMs ?? 1000);
    this.pollTimer.unref();
    await this.check();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.pollTimer);
    this.watcher?.close();
    this.watcher = undefined;
  }

  /** The RRQ guard: false (and counted, logged at debug) while no snapshot is served. */
  admit(client: RemoteInfo, file: string): boolean {
    if (this.stateNow === 'serving') return true;
    this.opts.metrics.requestsDropped.inc({ reason: SNAPSHOT_PENDING });
    this.opts.logger.debug(
      { client: client.address, clientPort: client.port, file, reason: SNAPSHOT_PENDING },
      'Request dropped',
    );
    return false;
  }

  status(now = Date.now()): SnapshotGateStatus {
    const s = this.served;
    return {
      required: true,
      state: this.stateNow,
      marker: this.lastReason || 'ok',
      ...(s
        ? {
            source: s.source,
            resourceVersions: s.resourceVersions,
            syncedAt: s.syncedAt,
            ageSeconds: Math.max(0, Math.round((now - Date.parse(s.syncedAt)) / 1000)),
          }
        : {}),
    };
  }

  private ensureWatch(): void {
    if (this.watcher || this.stopped) return;
    try {
      this.watcher = watch(this.opts.dir, { persistent: false }, (_event, name) => {
        if (name === null || name === SNAPSHOT_MARKER) void this.check();
      });
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = undefined; // the next poll watches again
      });
    } catch {
      this.watcher = undefined; // no directory yet: the poll retries
    }
  }

  /** Reads the marker now; calls during a check fold into one more after it. */
  private check(): Promise<void> {
    if (this.checking) {
      this.checkAgain = true;
      return this.checking;
    }
    this.checking = (async () => {
      try {
        do {
          this.checkAgain = false;
          this.ensureWatch();
          await this.apply(await readSnapshotMarker(this.opts.dir));
        } while (this.checkAgain && !this.stopped);
      } finally {
        this.checking = undefined;
      }
    })();
    return this.checking;
  }

  private async apply(read: MarkerParse): Promise<void> {
    if (this.stopped) return;
    if (!read.ok || !read.marker.complete) {
      const reason = read.ok ? 'incomplete' : read.reason;
      if (reason !== this.lastReason) {
        const fields = { dir: this.opts.dir, marker: SNAPSHOT_MARKER, reason };
        if (this.served)
          this.opts.logger.warn(fields, 'Config snapshot marker not usable; the last one stays');
        else this.opts.logger.info(fields, 'Config snapshot not complete yet');
      }
      this.lastReason = reason;
      return;
    }
    this.lastReason = '';
    const marker = read.marker;
    if (this.stateNow === 'waiting') {
      this.stateNow = 'opening';
      try {
        for (const work of this.beforeOpen) await work();
      } catch (err) {
        this.stateNow = 'waiting';
        this.opts.logger.error(
          { err: (err as Error).message },
          'Config snapshot could not be loaded; retrying',
        );
        return;
      }
      this.stateNow = 'serving';
      this.serve(marker, 'Config snapshot served; requests are answered');
    } else if (this.stateNow === 'serving' && !sameSnapshot(marker, this.served)) {
      this.serve(marker, 'Config snapshot updated');
    }
  }

  private serve(marker: SnapshotMarker, message: string): void {
    this.served = marker;
    const m = this.opts.metrics;
    m.configSnapshotTimestamp.set(Date.parse(marker.syncedAt) / 1000);
    m.configSnapshotInfo.reset();
    m.configSnapshotInfo.set({ source: marker.source }, 1);
    m.configSnapshotResourceVersion.reset();
    for (const [configmap, rv] of Object.entries(marker.resourceVersions))
      m.configSnapshotResourceVersion.set({ configmap, resource_version: rv }, 1);
    const { ageSeconds } = this.status();
    this.opts.logger.info(
      {
        source: marker.source,
        shards: Object.keys(marker.resourceVersions).length,
        syncedAt: marker.syncedAt,
        ageSeconds,
      },
      message,
    );
  }
}

function sameSnapshot(a: SnapshotMarker, b: SnapshotMarker | undefined): boolean {
  return (
    b !== undefined &&
    a.source === b.source &&
    a.syncedAt === b.syncedAt &&
    JSON.stringify(a.resourceVersions) === JSON.stringify(b.resourceVersions)
  );
}
