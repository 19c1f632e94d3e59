/**
 * One client's NBD disk through its life: disconnected → connecting → connected, or
 * failed (backing off before the next try). Owned by DiskRegistry.
 */
import type { Logger } from 'pino';
import type { NbdConfig } from '../../../../common/src/nbd-config.ts';
import { redactNbdUrl } from '../../../../common/src/nbd-url-redaction.ts';
import type { DataplaneMetrics } from '../../metrics.ts';
import { DiskError } from '../disk-session.ts';
import type { DiskBackendName, DiskConnector, DiskSession } from '../disk-session.ts';

export interface DiskSlotOptions {
  clientIp: string;
  file: string;
  config: NbdConfig;
  backends: DiskBackendName[];
  connectors: Partial<Record<DiskBackendName, DiskConnector>>;
  logger: Logger;
  metrics: DataplaneMetrics;
  retryBaseMs: number;
  retryMaxMs: number;
  idleTimeoutMs: number;
  /** Asks the registry for room under --max-sessions; false when none can be made. */
  makeRoom(): boolean;
  /**
   * Resolves 'room' when a session may have become free (one closed, or one's last file
   * closed), 'timeout' after `ms`, 'aborted' with the signal.
   */
  waitForRoom(ms: number, signal: AbortSignal): Promise<'room' | 'timeout' | 'aborted'>;
  /** Tells the registry a session may have become free. */
  roomMaybe(): void;
}

export type SlotState = 'disconnected' | 'connecting' | 'connected' | 'failed' | 'retired';

export interface SlotStatus {
  client: string;
  file: string;
  url: string;
  state: SlotState;
  backend: DiskBackendName | null;
  activeFiles: number;
  failures: number;
  lastError: { code: string; reason: string; message: string; at: string } | null;
  nextRetryAt: string | null;
  connectedAt: string | null;
  lastUsedAt: string;
}

const CONFIG_FAULTS = new Set([
  'partition-missing',
  'mount-failed',
  'unsupported-filesystem',
  // A refused NBD target stays refused until the config or the flag changes.
  'not-permitted',
]);
/**
 * A request for a disk whose server failed tries it again at once (the user may have
 * repaired the server and rebooted the client), at most this often per disk...
 */
const REQUEST_RETRY_MIN_MS = 2000;
/** ...and waits this long for it: a client whose disk was down is not held longer. */
const REQUEST_RETRY_WAIT_MS = 3000;

function toDiskError(err: unknown): DiskError {
  if (err instanceof DiskError) return err;
  return new DiskError('RTFTP_ERR_NBD_CONNECT', 'other', (err as Error)?.message ?? String(err), {
    cause: err,
  });
}

export class DiskSlot {
  readonly config: NbdConfig;
  readonly idleTimeoutMs: number;
  private state: SlotState = 'disconnected';
  private session: DiskSession | undefined;
  private backend: DiskBackendName | null = null;
  private connecting: Promise<void> | undefined;
  private connectAbort: AbortController | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private nextRetryAt = 0;
  private lastAttemptAt = 0;
  private lastError: SlotStatus['lastError'] = null;
  private connectedAt: Date | null = null;
  private activeFiles = 0;
  private whenNoFiles: (() => void) | undefined;
  lastUsed = Date.now();

  constructor(private readonly opts: DiskSlotOptions) {
    this.config = opts.config;
    this.idleTimeoutMs = opts.idleTimeoutMs;
  }

  /** The last failure was the config's (a missing partition…), not the server's. */
  private get configFault(): boolean {
    return CONFIG_FAULTS.has(this.lastError?.reason ?? '');
  }

  get holdsSession(): boolean {
    return this.session !== undefined || this.connecting !== undefined;
  }

  get idleClosable(): boolean {
    return this.session !== undefined && this.activeFiles === 0 && this.state !== 'retired';
  }

  fileOpened(): void {
    this.activeFiles++;
    this.lastUsed = Date.now();
  }

  fileClosed(): void {
    this.activeFiles--;
    this.lastUsed = Date.now();
    if (this.activeFiles === 0) {
      this.whenNoFiles?.();
      this.opts.roomMaybe();
    }
  }

  touch(): void {
    this.lastUsed = Date.now();
  }

  connectInBackground(why: string): void {
    void this.startConnect(why);
  }

  private startConnect(why: string): Promise<void> | undefined {
    if (this.connecting || this.state === 'retired') return this.connecting;
    if (!this.opts.makeRoom()) {
      this.recordError(
        new DiskError(
          'RTFTP_ERR_NBD_MAX_SESSIONS',
          'other',
          'every allowed disk session is in use (--max-sessions)',
        ),
      );
      return undefined;
    }
    clearTimeout(this.retryTimer);
    this.state = 'connecting';
    this.lastAttemptAt = Date.now();
    const abort = new AbortController();
    this.connectAbort = abort;
    const { logger, metrics } = this.opts;
    logger.info(
      { why, url: redactNbdUrl(this.config.url), backends: this.opts.backends },
      'Disk connecting',
    );
    this.connecting = (async () => {
      for (const backend of this.opts.backends) {
        const connector = this.opts.connectors[backend]!;
        const started = Date.now();
        try {
          const session = await connector({
            config: this.config,
            configName: this.opts.file,
            logger,
            signal: abort.signal,
          });
          if (abort.signal.aborted) {
            await session.close();
            return;
          }
          this.session = session;
          this.backend = backend;
          this.state = 'connected';
          this.connectedAt = new Date();
          this.failures = 0;
          this.lastError = null;
          this.lastUsed = Date.now();
          metrics.nbdSessionsActive.inc({ backend });
          metrics.nbdLaunchSeconds.observe({ backend }, (Date.now() - started) / 1000);
          logger.info({ backend, durationMs: Date.now() - started }, 'Disk connected');
          return;
        } catch (err) {
          if (abort.signal.aborted) return;
          const e = toDiskError(err);
          metrics.nbdLaunchFailures.inc({ backend, reason: e.reason });
          this.recordError(e);
          logger.warn(
            {
              backend,
              reason: e.reason,
              code: e.code,
              err: e.message,
              durationMs: Date.now() - started,
            },
            'Disk connect failed',
          );
          // 'auto' tries the other backend only when this one cannot read the filesystem.
          if (this.config.backend !== 'auto' || e.reason !== 'unsupported-filesystem') break;
        }
      }
      this.scheduleRetry();
    })().finally(() => {
      this.connecting = undefined;
      if (this.connectAbort === abort) this.connectAbort = undefined;
      if (!this.session) this.opts.roomMaybe();
    });
    return this.connecting;
  }

  private recordError(e: DiskError): void {
    this.lastError = {
      code: e.code,
      reason: e.reason,
      message: e.message,
      at: new Date().toISOString(),
    };
  }

  private scheduleRetry(): void {
    this.state = 'failed';
    this.failures++;
    // A disk that does not match its config (no such partition, mount point, filesystem)
    // stays broken until someone changes the disk or the config (which makes a new slot):
    // retry it only for a request, and ten times less often, since each try launches an
    // appliance. A server that is down comes back by itself: retry those in the background.
    const configFault = this.configFault;
    const scale = configFault ? 10 : 1;
    const backoff = Math.min(
      this.opts.retryMaxMs * scale,
      this.opts.retryBaseMs * scale * 2 ** (this.failures - 1),
    );
    const delay = Math.round(backoff * (0.8 + Math.random() * 0.4));
    this.nextRetryAt = Date.now() + delay;
    if (this.config.prefetch && !configFault) {
      this.retryTimer = setTimeout(() => this.connectInBackground('retry'), delay);
      this.retryTimer.unref();
    }
  }

  async acquire(
    waitMs: number,
    signal: AbortSignal,
  ): Promise<
    | { status: 'ready'; session: DiskSession }
    | { status: 'unavailable'; reason: string }
    | { status: 'not-ready' }
  > {
    if (this.state === 'retired') return { status: 'unavailable', reason: 'config removed' };
    this.lastUsed = Date.now();
    if (this.session && !this.session.healthy) this.dropSession('session failed');
    if (this.session) return this.ready(this.session);
    let connecting = this.connecting;
    let quickRetry = false;
    if (!connecting) {
      if (this.state === 'failed' && Date.now() < this.nextRetryAt) {
        if (this.configFault || Date.now() - this.lastAttemptAt < REQUEST_RETRY_MIN_MS) {
          const inS = Math.ceil((this.nextRetryAt - Date.now()) / 1000);
          return {
            status: 'unavailable',
            reason: `${this.lastError?.message ?? 'disk failed'} (retry in ${inS} s)`,
          };
        }
        quickRetry = true;
        waitMs = Math.min(waitMs, REQUEST_RETRY_WAIT_MS);
      }
    }
    const deadline = Date.now() + waitMs;
    if (!connecting) {
      const started = await this.connectWhenRoom(
        quickRetry ? 'request after a failure' : 'request',
        deadline,
        signal,
      );
      if (started === 'timeout') return { status: 'not-ready' };
      if (started === 'aborted') return { status: 'unavailable', reason: 'request abandoned' };
      if (started === 'retired') return { status: 'unavailable', reason: 'config removed' };
      connecting = started.connecting;
    }
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const outcome = await Promise.race([
      connecting.then(() => 'done' as const),
      new Promise<'timeout'>(
        (r) => (timer = setTimeout(() => r('timeout'), Math.max(0, deadline - Date.now()))),
      ),
      new Promise<'aborted'>((r) => {
        onAbort = () => r('aborted');
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
    if (outcome === 'timeout' && quickRetry) {
      // The connect goes on in the background; this request gets the rest of the view.
      return { status: 'unavailable', reason: 'disk was down; reconnect in progress' };
    }
    if (outcome === 'timeout') return { status: 'not-ready' };
    if (outcome === 'aborted') return { status: 'unavailable', reason: 'request abandoned' };
    // Re-read: the connect above changed it (TypeScript's narrowing does not know).
    const session = this.session as DiskSession | undefined;
    if (session?.healthy) return this.ready(session);
    return { status: 'unavailable', reason: this.lastError?.message ?? 'disk not connected' };
  }

  /**
   * The session, counted as in use at once (fileOpened): a request between acquiring the
   * disk and opening its file must not see it closed as idle to make room for another.
   * The caller ends that use with fileClosed(), when its file closes or its open fails.
   */
  private ready(session: DiskSession): { status: 'ready'; session: DiskSession } {
    this.fileOpened();
    return { status: 'ready', session };
  }

  /**
   * Starts the connect, waiting until the deadline for room under --max-sessions. Every
   * allowed session busy is a matter of capacity, not a broken disk: the request waits
   * like one for a disk still connecting, and past --disk-wait gets 'not-ready' (ERROR 0,
   * the client retries) — never the rest of the view, which could boot default/'s kernel.
   */
  private async connectWhenRoom(
    why: string,
    deadline: number,
    signal: AbortSignal,
  ): Promise<{ connecting: Promise<void> } | 'timeout' | 'aborted' | 'retired'> {
    for (;;) {
      if (this.state === 'retired') return 'retired';
      // Another request may have connected this disk, or started to, while this one waited.
      if (this.session) return { connecting: Promise.resolve() };
      const connecting = this.startConnect(why);
      if (connecting) return { connecting };
      const left = deadline - Date.now();
      if (left <= 0) return 'timeout';
      const woke = await this.opts.waitForRoom(left, signal);
      if (woke !== 'room') return woke;
    }
  }

  /** Closes the session (if no file is open, unless `force`) and any connect in flight. */
  async disconnect(why: string, force = false): Promise<void> {
    if (force) {
      clearTimeout(this.retryTimer);
      this.connectAbort?.abort();
      // The aborted connect is still killing its processes: wait, so nothing outlives stop().
      await this.connecting?.catch(() => undefined);
    }
    if (this.session && (force || this.activeFiles === 0)) await this.dropSession(why);
  }

  private dropSession(why: string): Promise<void> {
    const session = this.session;
    if (!session) return Promise.resolve();
    this.session = undefined;
    if (this.state !== 'retired') this.state = 'disconnected';
    if (this.backend) this.opts.metrics.nbdSessionsActive.dec({ backend: this.backend });
    this.opts.logger.info({ backend: this.backend, reason: why }, 'Disk disconnected');
    this.connectedAt = null;
    this.opts.roomMaybe();
    return session.close().catch(() => undefined);
  }

  /** Config changed or removed: no new use; closes once the open files are closed. */
  async retire(why: string): Promise<void> {
    this.state = 'retired';
    clearTimeout(this.retryTimer);
    this.connectAbort?.abort();
    if (this.activeFiles > 0) await new Promise<void>((r) => (this.whenNoFiles = r));
    await this.dropSession(why);
  }

  status(): SlotStatus {
    return {
      client: this.opts.clientIp,
      file: this.opts.file,
      url: redactNbdUrl(this.config.url),
      state: this.state,
      backend: this.backend,
      activeFiles: this.activeFiles,
      failures: this.failures,
      lastError: this.lastError,
      nextRetryAt: this.state === 'failed' ? new Date(this.nextRetryAt).toISOString() : null,
      connectedAt: this.connectedAt?.toISOString() ?? null,
      lastUsedAt: new Date(this.lastUsed).toISOString(),
    };
  }
}
