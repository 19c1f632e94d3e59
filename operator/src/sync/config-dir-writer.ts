/**
 * Keeps a directory's `<ip>.nbd` files equal to a desired set, for the dataplane that
 * watches it:
 * - atomically: each file is written to a dot-named temp file and renamed over, so the
 *   dataplane never reads half a config (dot names are never config names);
 * - only what changed is written; files that left the set are deleted;
 * - it never touches a file it did not write: what it wrote is listed in a manifest
 *   (itself replaced atomically), which also lets a restarted sync delete the files a
 *   previous run wrote and nobody wants any more.
 */
import { randomBytes } from 'node:crypto';
import { readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { clientIpOfConfigName } from '../../../common/src/nbd-config.ts';
import {
  SNAPSHOT_MARKER,
  renderSnapshotMarker,
  type SnapshotMarker,
} from '../../../common/src/snapshot-marker.ts';

export const MANIFEST_NAME = '.rtftp-sync-manifest.json';

export interface SyncOutcome {
  written: number;
  deleted: number;
  skipped: number;
}

export class ConfigDirWriter {
  /** What is on disk that we wrote: name → text. */
  private readonly owned = new Map<string, string>();
  private readonly warnedForeign = new Set<string>();

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** Loads the manifest of a previous run. */
  async init(): Promise<void> {
    let names: unknown = [];
    try {
      names = JSON.parse(await readFile(join(this.dir, MANIFEST_NAME), 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log.warn(
          { dir: this.dir, err: (err as Error).message },
          'Sync manifest unreadable; starting empty',
        );
    }
    for (const name of Array.isArray(names) ? names : []) {
      if (typeof name !== 'string' || clientIpOfConfigName(name) === null) continue;
      try {
        this.owned.set(name, await readFile(join(this.dir, name), 'utf8'));
      } catch {
        // Gone since: nothing to own.
      }
    }
  }

  get fileCount(): number {
    return this.owned.size;
  }

  private async writeAtomic(name: string, text: string): Promise<void> {
    const tmp = join(this.dir, `.${name}.tmp-${randomBytes(4).toString('hex')}`);
    try {
      await writeFile(tmp, text, { mode: 0o644 });
      await rename(tmp, join(this.dir, name));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Makes the directory hold exactly `desired` (among the files this writer owns). */
  async apply(desired: ReadonlyMap<string, string>): Promise<SyncOutcome> {
    const outcome: SyncOutcome = { written: 0, deleted: 0, skipped: 0 };
    const present = new Set(await readdir(this.dir));
    const toWrite: [string, string][] = [];
    for (const [name, text] of desired) {
      if (this.owned.get(name) === text) continue;
      if (!this.owned.has(name) && present.has(name)) {
        outcome.skipped++;
        if (!this.warnedForeign.has(name)) {
          this.warnedForeign.add(name);
          this.log.warn(
            { dir: this.dir, file: name },
            'Config skipped: a file sync did not write is in the way',
          );
        }
        continue;
      }
      toWrite.push([name, text]);
    }
    // Manifest first for new files: a crash in between leaves an owned name, not an orphan.
    const added = toWrite.filter(([name]) => !this.owned.has(name)).map(([name]) => name);
    if (added.length) await this.writeManifest([...this.owned.keys(), ...added]);
    for (const [name, text] of toWrite) {
      await this.writeAtomic(name, text);
      this.owned.set(name, text);
      outcome.written++;
    }
    for (const name of [...this.owned.keys()]) {
      if (desired.has(name)) continue;
      await rm(join(this.dir, name), { force: true });
      this.owned.delete(name);
      outcome.deleted++;
    }
    if (outcome.deleted) await this.writeManifest([...this.owned.keys()]);
    return outcome;
  }

  /**
   * Declares the files now in the directory a complete snapshot (common/src/snapshot-marker.ts). Call
   * it only after apply() of that snapshot returned: the dataplane trusts every file it
   * sees once the marker is there.
   */
  async writeMarker(marker: SnapshotMarker): Promise<void> {
    await this.writeAtomic(SNAPSHOT_MARKER, renderSnapshotMarker(marker));
  }

  private async writeManifest(names: string[]): Promise<void> {
    await this.writeAtomic(MANIFEST_NAME, JSON.stringify(names.sort()) + '\n');
  }
}
