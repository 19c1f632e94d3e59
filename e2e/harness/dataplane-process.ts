/**
 * The real dataplane (`bin/rtftp.js`) inside the boot network's namespace, on UDP 69 of
 * the bridge address, as a user runs it. Its pino JSON lines are the test's evidence:
 * which file each client got, from which source, how fast, and when a disk connected.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SERVER_IP } from './boot-network.ts';
import type { BootNetwork } from './boot-network.ts';
import type { OutputLine, TrackedProcess } from './processes.ts';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** RTFTP_E2E_BIN runs another build (an installed package, a patched checkout) instead. */
const BIN = process.env.RTFTP_E2E_BIN ?? `${REPO}bin/rtftp.js`;
const METRICS_PORT = 9669;

/** A dataplane log line, as far as these tests read it. */
export interface LogEntry {
  msg: string;
  time: number;
  [field: string]: unknown;
}

/** One "Transfer …" line: a file served (or not) to a client. */
export interface TransferEntry extends LogEntry {
  client: string;
  file: string;
  source?: string;
  location?: string;
  bytes: number;
  durationMs: number;
  outcome: string;
  blksize?: number;
  windowsize?: number;
  retransmits?: number;
}

/** When the client's request for this transfer arrived (the line is logged at the end). */
export function transferStart(t: TransferEntry): number {
  return t.time - Number(t.durationMs);
}

/** Why the dataplane cannot be run yet, or null. */
export function dataplaneMissingReason(): string | null {
  if (!existsSync(`${REPO}dataplane/src/main.ts`) && !existsSync(`${REPO}dist/dataplane`)) {
    return 'the dataplane (dataplane/src/main.ts behind bin/rtftp.js) is not in the tree yet';
  }
  return null;
}

export function parseLogLine(line: OutputLine): LogEntry | null {
  if (!line.text.startsWith('{')) return null;
  try {
    const v = JSON.parse(line.text) as Record<string, unknown> & { msg: unknown; time: unknown };
    if (typeof v.msg !== 'string') return null;
    // pino writes epoch ms by default, ISO text with its isoTime option.
    const time = typeof v.time === 'string' ? Date.parse(v.time) : Number(v.time);
    return { ...v, msg: v.msg, time };
  } catch {
    return null;
  }
}

export class RunningDataplane {
  constructor(
    readonly process: TrackedProcess,
    private readonly net: BootNetwork,
  ) {}

  entries(): LogEntry[] {
    return this.process.lines.map(parseLogLine).filter((e): e is LogEntry => e !== null);
  }

  /**
   * Transfer lines for one client (all outcomes) whose request arrived at or after
   * `sinceMs`, in log order. A line is written when its transfer ends, so a request held
   * from an earlier boot can end during this one: it is left out by its start time.
   */
  transfers(client: string, sinceMs = 0): TransferEntry[] {
    return this.entries().filter(
      (e): e is TransferEntry =>
        e.msg.startsWith('Transfer') &&
        e.client === client &&
        transferStart(e as TransferEntry) >= sinceMs,
    );
  }

  async waitFor(match: (e: LogEntry) => boolean, timeoutMs: number): Promise<LogEntry> {
    const line = await this.process.waitForLine((l) => {
      const e = parseLogLine(l);
      return e !== null && match(e);
    }, timeoutMs);
    return parseLogLine(line)!;
  }

  /** The Prometheus text from /metrics, fetched inside the namespace. */
  metrics(): Promise<string> {
    return this.net.exec('curl', ['-sf', `http://127.0.0.1:${METRICS_PORT}/metrics`]);
  }

  stop(): Promise<void> {
    return this.process.stop(10_000);
  }
}

export interface DataplaneOptions {
  root: string;
  /** Private dir for appliances; reused across runs it keeps the built appliance. */
  workDir: string;
  extraArgs?: string[];
}

export async function startDataplane(
  net: BootNetwork,
  opts: DataplaneOptions,
): Promise<RunningDataplane> {
  const proc = net.start(
    'dataplane',
    process.execPath,
    [
      BIN,
      '--root',
      opts.root,
      '--listen',
      SERVER_IP,
      '--port',
      '69',
      '--metrics-port',
      String(METRICS_PORT),
      '--metrics-listen',
      '127.0.0.1',
      '--work-dir',
      opts.workDir,
      '--log-level',
      'info',
      ...(opts.extraArgs ?? []),
    ],
    { env: { RTFTP_LOG_LEVEL: undefined, LIBGUESTFS_DEBUG: undefined } },
  );
  const dataplane = new RunningDataplane(proc, net);
  try {
    await dataplane.waitFor((e) => e.msg === 'Server listening', 60_000);
    // /metrics comes up just after the TFTP sockets.
    await dataplane.waitFor((e) => e.msg === 'HTTP server listening', 30_000);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return dataplane;
}
