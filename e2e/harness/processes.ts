/**
 * Long-running helper processes of the PXE end-to-end harness (dataplane, dnsmasq,
 * qemu). Each is started in its own process group so that whatever it spawned (the
 * dataplane's guestfish appliances) can be ended with it, by that group's id; each
 * keeps its output as timestamped lines, bounded, for assertions and for the report
 * printed when a scenario fails.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** One line a process printed, with the wall-clock time it arrived. */
export interface OutputLine {
  at: number;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface TrackedProcess {
  readonly name: string;
  readonly pid: number;
  /** Lines seen so far (the oldest dropped past `maxLines`). */
  readonly lines: readonly OutputLine[];
  /** Resolves when the process has exited, with its exit code (null when signalled). */
  readonly exited: Promise<number | null>;
  readonly hasExited: boolean;
  /** Resolves with the first line (seen already or arriving later) matching `match`. */
  waitForLine(match: (line: OutputLine) => boolean, timeoutMs: number): Promise<OutputLine>;
  /** SIGTERM, then SIGKILL to the whole group after `graceMs`; safe to call twice. */
  stop(graceMs?: number): Promise<void>;
}

export class HarnessError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'HarnessError';
  }
}

/** RTFTP_E2E_VERBOSE=1 echoes every helper's output live, prefixed with its name. */
const VERBOSE = Boolean(process.env.RTFTP_E2E_VERBOSE);

const live = new Set<TrackedProcess>();
// Last resort when a test file dies without its after hooks: no qemu left spinning.
process.once('exit', () => {
  for (const p of live) killGroup(p.pid, 'SIGKILL');
});

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Lines kept; older ones are dropped (a long dataplane run must not grow without bound). */
  maxLines?: number;
  /** Called for each line as it arrives (e.g. to echo it when debugging). */
  onLine?: (line: OutputLine) => void;
}

export function startProcess(
  name: string,
  command: string,
  args: readonly string[],
  opts: StartOptions = {},
): TrackedProcess {
  const child = spawn(command, args, {
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group: stop() reaches its children too
  });
  if (child.pid === undefined) {
    throw new HarnessError('E2E_ERR_SPAWN', `${name}: could not start ${command}`);
  }
  const pid = child.pid;
  const maxLines = opts.maxLines ?? 20_000;
  const lines: OutputLine[] = [];
  const waiters = new Set<(line: OutputLine) => void>();
  let exitedFlag = false;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exitedFlag = true;
      live.delete(handle);
      resolve(code);
    });
    child.once('error', () => {
      exitedFlag = true;
      live.delete(handle);
      resolve(null);
    });
  });
  for (const stream of ['stdout', 'stderr'] as const) {
    const rl = createInterface({ input: child[stream]! });
    rl.on('line', (text) => {
      const line: OutputLine = { at: Date.now(), stream, text };
      lines.push(line);
      if (lines.length > maxLines) lines.shift();
      opts.onLine?.(line);
      if (VERBOSE) process.stderr.write(`${new Date(line.at).toISOString()} [${name}] ${text}\n`);
      for (const w of waiters) w(line);
    });
  }

  const handle: TrackedProcess = {
    name,
    pid,
    lines,
    exited,
    get hasExited() {
      return exitedFlag;
    },
    waitForLine(match, timeoutMs) {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const done = (err: Error | null, line?: OutputLine) => {
          clearTimeout(timer);
          waiters.delete(onLine);
          if (err) reject(err);
          else resolve(line!);
        };
        const onLine = (line: OutputLine) => {
          if (match(line)) done(null, line);
        };
        const timer = setTimeout(
          () =>
            done(
              new HarnessError(
                'E2E_ERR_TIMEOUT',
                `${name}: expected line not seen within ${timeoutMs} ms; last lines:\n` +
                  tail(lines, 15),
              ),
            ),
          timeoutMs,
        );
        waiters.add(onLine);
        void exited.then((code) => {
          // Lines still in the pipe arrive before 'close'; give them a moment.
          setTimeout(
            () =>
              done(
                new HarnessError(
                  'E2E_ERR_EXITED',
                  `${name} exited (code ${code}) before the expected line; last lines:\n` +
                    tail(lines, 15),
                ),
              ),
            200,
          );
        });
      });
    },
    async stop(graceMs = 5_000) {
      if (exitedFlag) {
        killGroup(pid, 'SIGKILL'); // children it left behind
        return;
      }
      child.kill('SIGTERM');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      killGroup(pid, 'SIGKILL');
    },
  };
  live.add(handle);
  return handle;
}

/** The last `n` lines, for error messages. */
export function tail(lines: readonly OutputLine[], n: number): string {
  return lines
    .slice(-n)
    .map((l) => `  ${l.text}`)
    .join('\n');
}
