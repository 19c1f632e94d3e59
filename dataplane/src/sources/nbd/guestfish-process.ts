/**
 * One guestfish child driven over stdin/stdout (framing in guestfish-protocol.ts).
 * Every request's success or failure is known for certain; a request that makes no
 * progress for its timeout kills the whole process group (guestfish, and qemu whose
 * pid we learn after launch), as does the daemon's exit, so no qemu is ever orphaned.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import {
  MarkerFactory,
  MarkerSplitter,
  errorOfStderr,
  formatCommand,
} from './guestfish-protocol.ts';

export type GuestfishErrorCode =
  'RTFTP_ERR_GUESTFISH_COMMAND' | 'RTFTP_ERR_GUESTFISH_TIMEOUT' | 'RTFTP_ERR_GUESTFISH_EXITED';

export class GuestfishError extends Error {
  constructor(
    readonly code: GuestfishErrorCode,
    /** The command that failed, e.g. `mount-ro`. */
    readonly command: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'GuestfishError';
  }
}

interface PendingRequest {
  command: string;
  stdoutMark: Buffer;
  stderrMark: string;
  timeoutMs: number;
  stdout: Buffer | null;
  stderr: string | null;
  timer: NodeJS.Timeout | undefined;
  resolve(out: Buffer): void;
  reject(err: Error): void;
}

const live = new Set<GuestfishProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Synchronous on purpose: 'exit' handlers cannot wait.
  process.once('exit', () => {
    for (const p of live) p.killNow();
  });
}

/** Kill everything alive (tests, and the daemon's shutdown path). */
export function killAllGuestfish(): void {
  for (const p of live) p.killNow();
}

const MAX_STDERR_KEPT = 256 * 1024;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once none of `pids` exists any more (or after `timeoutMs`). */
async function waitUntilGone(pids: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isAlive) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
}

export class GuestfishProcess {
  private readonly child: ChildProcess;
  private readonly markers = new MarkerFactory();
  private readonly stdout = new MarkerSplitter();
  private stderrText = '';
  private readonly pending: PendingRequest[] = [];
  /** Index of the first request still waiting for its stdout marker. */
  private stdoutIndex = 0;
  private stderrIndex = 0;
  private readonly extraPids = new Set<number>();
  private exitedFlag = false;
  private readonly exitedPromise: Promise<void>;
  private lastStderr = '';

  constructor(opts: { env: NodeJS.ProcessEnv; logger: Logger; guestfishPath?: string }) {
    installExitHook();
    this.child = spawn(opts.guestfishPath ?? 'guestfish', [], {
      env: opts.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group, so a kill reaches everything guestfish started.
      detached: true,
    });
    live.add(this);
    let exited!: () => void;
    this.exitedPromise = new Promise((resolve) => (exited = resolve));
    /** Once, whichever of 'exit' and 'error' tells first that guestfish is gone. */
    const gone = (command: string, message: string, cause?: Error) => {
      if (this.exitedFlag) return;
      this.exitedFlag = true;
      live.delete(this);
      this.failAll(
        new GuestfishError('RTFTP_ERR_GUESTFISH_EXITED', command, message, cause && { cause }),
      );
      exited();
    };
    this.child.once('exit', (code, signal) =>
      gone(
        this.pending[0]?.command ?? '',
        `guestfish exited (${signal ?? `code ${code}`})${this.lastStderr ? `: ${this.lastStderr}` : ''}`,
      ),
    );
    this.child.once('error', (err) => {
      opts.logger.error({ err: err.message }, 'guestfish failed to start');
      if (this.child.pid !== undefined) return; // a running child: 'exit' reports it
      // Never started (e.g. not installed): 'exit' may never come, so fail here.
      gone('', `cannot run guestfish: ${err.message}`, err);
    });
    this.child.stdin!.on('error', () => undefined); // EPIPE after death: 'exit' reports it
    this.child.stdout!.on('data', (d: Buffer) => this.onStdout(d));
    this.child.stderr!.on('data', (d: Buffer) => this.onStderr(d.toString('utf8')));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get exited(): boolean {
    return this.exitedFlag;
  }

  /** A pid outside guestfish's group to kill with it (qemu sets its own group). */
  addChildPid(pid: number): void {
    this.extraPids.add(pid);
  }

  /**
   * Runs one command; resolves its stdout bytes, rejects a GuestfishError with the
   * guestfish error text. `timeoutMs` counts from when the command starts running and
   * restarts whenever output arrives (a no-progress timeout).
   */
  run(command: string, args: readonly (string | number)[], timeoutMs: number): Promise<Buffer> {
    if (this.exitedFlag) {
      return Promise.reject(
        new GuestfishError('RTFTP_ERR_GUESTFISH_EXITED', command, 'guestfish is not running'),
      );
    }
    const mark = this.markers.create();
    return new Promise<Buffer>((resolve, reject) => {
      const req: PendingRequest = {
        command,
        stdoutMark: mark.stdout,
        stderrMark: mark.stderr,
        timeoutMs,
        stdout: null,
        stderr: null,
        timer: undefined,
        resolve,
        reject,
      };
      this.pending.push(req);
      if (this.pending.length === 1) this.armTimer(req);
      this.child.stdin!.write(`${formatCommand(command, args)}\n${mark.script}`);
    });
  }

  private armTimer(req: PendingRequest): void {
    clearTimeout(req.timer);
    req.timer = setTimeout(() => {
      const err = new GuestfishError(
        'RTFTP_ERR_GUESTFISH_TIMEOUT',
        req.command,
        `guestfish ${req.command} made no progress for ${req.timeoutMs} ms`,
      );
      this.failAll(err);
      this.killNow();
    }, req.timeoutMs);
    req.timer.unref();
  }

  private onStdout(data: Buffer): void {
    this.stdout.push(data);
    const head = this.pending[0];
    if (head) this.armTimer(head);
    while (this.stdoutIndex < this.pending.length) {
      const req = this.pending[this.stdoutIndex]!;
      const out = this.stdout.take(req.stdoutMark);
      if (out === null) break;
      req.stdout = out;
      this.stdoutIndex++;
    }
    this.completeReady();
  }

  private onStderr(text: string): void {
    this.stderrText += text;
    if (this.stderrText.length > MAX_STDERR_KEPT)
      this.stderrText = this.stderrText.slice(-MAX_STDERR_KEPT / 4);
    const lines = this.stderrText.trim().split('\n');
    this.lastStderr = lines.slice(-3).join(' | ').slice(0, 500);
    while (this.stderrIndex < this.pending.length) {
      const req = this.pending[this.stderrIndex]!;
      const at = this.stderrText.indexOf(req.stderrMark);
      if (at < 0) break;
      req.stderr = this.stderrText.slice(0, at);
      this.stderrText = this.stderrText.slice(at + req.stderrMark.length);
      this.stderrIndex++;
    }
    this.completeReady();
  }

  private completeReady(): void {
    while (this.pending.length) {
      const head = this.pending[0]!;
      if (head.stdout === null || head.stderr === null) return;
      this.pending.shift();
      this.stdoutIndex--;
      this.stderrIndex--;
      clearTimeout(head.timer);
      const error = errorOfStderr(head.stderr);
      if (error === null) head.resolve(head.stdout);
      else head.reject(new GuestfishError('RTFTP_ERR_GUESTFISH_COMMAND', head.command, error));
      const next = this.pending[0];
      if (next) this.armTimer(next);
    }
  }

  private failAll(err: GuestfishError): void {
    const all = this.pending.splice(0);
    this.stdoutIndex = 0;
    this.stderrIndex = 0;
    for (const req of all) {
      clearTimeout(req.timer);
      req.reject(err);
    }
  }

  /** SIGKILLs the process group and the extra pids, at once. */
  killNow(): void {
    for (const pid of this.extraPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (!this.exitedFlag && this.child.pid !== undefined) {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /**
   * Ends guestfish: EOF on stdin lets it shut the appliance down cleanly; past
   * `graceMs` everything is killed. Resolves once guestfish has exited.
   */
  async close(graceMs = 3000): Promise<void> {
    if (!this.exitedFlag) {
      this.child.stdin!.end();
      const timer = setTimeout(() => this.killNow(), graceMs);
      await this.exitedPromise;
      clearTimeout(timer);
    }
    // qemu may outlive guestfish by a moment; never leave it behind.
    this.killNow();
    await waitUntilGone([...this.extraPids], graceMs + 2000);
  }
}
