/**
 * Watches a directory for `<ip>.nbd` configs and reports what changed: added, changed
 * (a different parsed config, not merely different bytes), removed.
 *
 * Any fs.watch event on the directory triggers a full rescan (debounced): that covers
 * editors' atomic renames and a ConfigMap volume's `..data` symlink swap, where the
 * `<ip>.nbd` names never change but the files behind them all do. inotify can still miss
 * events (overflow, network filesystems, a watch lost when the directory is replaced), so
 * a periodic rescan runs as a safety net. A rescan stats each file (following symlinks)
 * and reads only the ones whose identity changed.
 *
 * An invalid config is reported once per file version (a log line naming the file and
 * each field, rtftp_nbd_config_errors_total, and status()), and counts as absent: the
 * client then gets local files and default/.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  clientIpOfConfigName,
  formatProblems,
  parseNbdConfig,
} from '../../../common/src/nbd-config.ts';
import type { ConfigProblem, NbdConfig } from '../../../common/src/nbd-config.ts';
import { redactNbdUrl } from '../../../common/src/nbd-url-redaction.ts';
import type { DataplaneMetrics } from '../metrics.ts';

/** Larger files are refused unread: a config is a few hundred bytes. */
export const MAX_CONFIG_BYTES = 64 * 1024;

export interface ConfigEntryStatus {
  file: string;
  clientIp: string;
  state: 'valid' | 'invalid';
  url?: string;
  /** The Raspberry Pi serial it declares (requests under `<serial>/` are this client's). */
  serial?: string;
  problems?: ConfigProblem[];
  since: string;
}

interface Entry {
  file: string;
  clientIp: string;
  /** dev:ino:size:mtime of the file behind the name: unchanged → not read again. */
  identity: string;
  hash: string;
  config: NbdConfig | undefined;
  problems: ConfigProblem[] | undefined;
  since: Date;
}

export interface NbdConfigWatcherEvents {
  added: [clientIp: string, config: NbdConfig, file: string];
  changed: [clientIp: string, config: NbdConfig, previous: NbdConfig, file: string];
  removed: [clientIp: string, previous: NbdConfig, file: string];
}

export interface NbdConfigWatcherOptions {
  dir: string;
  logger: Logger;
  metrics: DataplaneMetrics;
  /** Safety-net rescan period (default 10 s). */
  rescanIntervalMs?: number;
  /**
   * The first event is acted on at once; further events within this window make one
   * more rescan at its end (default 50 ms).
   */
  debounceMs?: number;
  /**
   * A file that does not parse and was modified less than this long ago is taken to be
   * mid-write (a writer that does not rename into place): its previous state is kept and
   * it is read again once the window has passed (default 250 ms).
   */
  settleMs?: number;
}

export class NbdConfigWatcher extends EventEmitter<NbdConfigWatcherEvents> {
  private readonly entries = new Map<string, Entry>();
  private watcher: FSWatcher | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private eventsInWindow = false;
  private settleTimer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private scanAgain = false;
  private stopped = false;
  private dirProblem: string | undefined;

  constructor(private readonly opts: NbdConfigWatcherOptions) {
    super();
  }

  /** Scans once (so configs present at start are known when it resolves), then watches. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.rescan();
    this.rescanTimer = setInterval(() => void this.rescan(), this.opts.rescanIntervalMs ?? 10_000);
    this.rescanTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.rescanTimer);
    clearTimeout(this.debounceTimer);
    this.debounceTimer = undefined;
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  /** The valid config of a client, if any. */
  configOf(clientIp: string): NbdConfig | undefined {
    return this.entries.get(clientIp)?.config;
  }

  status(): ConfigEntryStatus[] {
    return [...this.entries.values()]
      .sort((a, b) => a.file.localeCompare(b.file))
      .map((e) => ({
        file: e.file,
        clientIp: e.clientIp,
        state: e.config ? 'valid' : 'invalid',
        ...(e.config ? { url: redactNbdUrl(e.config.url) } : {}),
        ...(e.config?.serial ? { serial: e.config.serial } : {}),
        ...(e.problems ? { problems: e.problems } : {}),
        since: e.since.toISOString(),
      }));
  }

  private ensureWatch(): void {
    if (this.watcher || this.stopped) return;
    try {
      this.watcher = watch(this.opts.dir, { persistent: false }, () => this.scheduleRescan());
      this.watcher.on('error', () => {
        // The directory went away or was replaced: the next rescan watches again.
        this.watcher?.close();
        this.watcher = undefined;
        this.scheduleRescan();
      });
    } catch {
      this.watcher = undefined; // directory missing: the periodic rescan retries
    }
  }

  /**
   * Leading edge: a config written now is seen now, not a debounce later (the first boot
   * request of a new client is usually right behind it). The rest of a burst of events
   * (a writer's open, write and close) makes one more rescan at the end of the window.
   */
  private scheduleRescan(): void {
    if (this.stopped) return;
    if (this.debounceTimer) {
      this.eventsInWindow = true;
      return;
    }
    void this.rescan();
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      if (!this.eventsInWindow) return;
      this.eventsInWindow = false;
      this.scheduleRescan();
    }, this.opts.debounceMs ?? 50);
    this.debounceTimer.unref();
  }

  private rescanAfterSettling(ms: number): void {
    if (this.stopped || this.settleTimer) return;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      void this.rescan();
    }, ms);
    this.settleTimer.unref();
  }

  /** Scans now; concurrent calls coalesce into one more scan after the running one. */
  rescan(): Promise<void> {
    if (this.scanning) {
      this.scanAgain = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      try {
        do {
          this.scanAgain = false;
          await this.scanOnce();
        } while (this.scanAgain && !this.stopped);
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    this.ensureWatch();
    let names: string[];
    try {
      names = await readdir(this.opts.dir);
      if (this.dirProblem)
        this.opts.logger.info({ dir: this.opts.dir }, 'Config directory readable again');
      this.dirProblem = undefined;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      if (this.dirProblem !== code) {
        this.opts.logger.error({ dir: this.opts.dir, err: code }, 'Config directory unreadable');
      }
      this.dirProblem = code;
      return; // keep what we know: a transient error must not drop every disk
    }
    const seen = new Set<string>();
    for (const file of names) {
      const clientIp = clientIpOfConfigName(file);
      if (!clientIp) continue;
      seen.add(clientIp);
      await this.scanFile(file, clientIp);
    }
    for (const [clientIp, entry] of this.entries) {
      if (seen.has(clientIp)) continue;
      this.entries.delete(clientIp);
      this.opts.logger.info({ file: entry.file, client: clientIp }, 'NBD config removed');
      if (entry.config) this.emit('removed', clientIp, entry.config, entry.file);
    }
    this.updateGauge();
  }

  private async scanFile(file: string, clientIp: string): Promise<void> {
    const path = join(this.opts.dir, file);
    let identity: string;
    let text: string;
    let modifiedMsAgo: number;
    try {
      const st = await stat(path);
      modifiedMsAgo = Date.now() - st.mtimeMs;
      identity = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
      if (this.entries.get(clientIp)?.identity === identity) return;
      if (!st.isFile()) {
        text = '';
        identity += ':notfile';
      } else if (st.size > MAX_CONFIG_BYTES) {
        text = '';
        identity += ':toolarge';
      } else {
        text = await readFile(path, 'utf8');
      }
    } catch {
      // Vanished between readdir and read, or a dangling symlink mid-swap: next scan decides.
      return;
    }
    const notFile = identity.endsWith(':notfile');
    const hash = createHash('sha256')
      .update(notFile ? identity : text)
      .digest('hex');
    const previous = this.entries.get(clientIp);
    if (previous?.hash === hash) {
      previous.identity = identity;
      return;
    }
    const result = notFile
      ? { ok: false as const, problems: [{ field: '', message: 'not a regular file' }] }
      : identity.endsWith(':toolarge')
        ? {
            ok: false as const,
            problems: [{ field: '', message: `larger than ${MAX_CONFIG_BYTES} bytes` }],
          }
        : parseNbdConfig(text);
    const settleMs = this.opts.settleMs ?? 250;
    // A modification time in the future (a skewed clock, a copied file) is no sign of a
    // write in progress: such a file would otherwise be deferred for ever.
    const midWrite = modifiedMsAgo >= -1000 && modifiedMsAgo < settleMs;
    if (!result.ok && !notFile && midWrite) {
      // Probably caught mid-write: keep the previous state (and its disk) for now.
      this.rescanAfterSettling(Math.min(settleMs, settleMs - modifiedMsAgo) + 5);
      return;
    }
    const entry: Entry = {
      file,
      clientIp,
      identity,
      hash,
      config: result.ok ? result.config : undefined,
      problems: result.ok ? undefined : result.problems,
      since: new Date(),
    };
    this.entries.set(clientIp, entry);
    this.report(entry, previous);
  }

  private report(entry: Entry, previous: Entry | undefined): void {
    const { file, clientIp } = entry;
    if (!entry.config) {
      const problems = entry.problems ?? [];
      this.opts.metrics.nbdConfigErrors.inc();
      this.opts.logger.warn(
        {
          file,
          client: clientIp,
          field: problems[0]?.field ?? '',
          problems,
          reason: formatProblems(problems),
        },
        'NBD config rejected',
      );
      if (previous?.config) this.emit('removed', clientIp, previous.config, file);
      return;
    }
    const config = entry.config;
    if (!previous?.config) {
      this.opts.logger.info(
        { file, client: clientIp, url: redactNbdUrl(config.url) },
        'NBD config added',
      );
      this.emit('added', clientIp, config, file);
    } else if (JSON.stringify(previous.config) !== JSON.stringify(config)) {
      this.opts.logger.info(
        { file, client: clientIp, url: redactNbdUrl(config.url) },
        'NBD config changed',
      );
      this.emit('changed', clientIp, config, previous.config, file);
    }
  }

  private updateGauge(): void {
    let valid = 0;
    for (const e of this.entries.values()) if (e.config) valid++;
    this.opts.metrics.nbdConfigs.set({ state: 'valid' }, valid);
    this.opts.metrics.nbdConfigs.set({ state: 'invalid' }, this.entries.size - valid);
  }
}
