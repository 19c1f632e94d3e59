/**
 * The framing rtftp uses to drive one long-lived guestfish over its stdin/stdout.
 *
 * Each request is sent as
 *   -COMMAND "arg" ...        (the leading `-` keeps guestfish alive when it fails)
 *   echo MARK                 (stdout: everything before MARK is the command's output)
 *   -rtftp-end-TOKEN          (an unknown command: guestfish writes
 *                              "rtftp-end-TOKEN: unknown command" on stderr, so
 *                              everything on stderr before it is the command's errors)
 * TOKEN is random per process and counts requests, so file bytes (pread output is raw)
 * cannot forge a marker by accident. guestfish runs requests in order, so a queue of
 * pending requests matches replies on both streams.
 */
import type { NotRegularKind } from '../source.ts';
import { randomBytes } from 'node:crypto';

/**
 * Quotes one argument for guestfish's parser: always double quotes, every byte outside
 * a conservative set escaped as \xHH, so spaces, quotes, `#`, `!` and UTF-8 names are safe.
 */
export function quoteGuestfishArg(arg: string): string {
  let out = '"';
  for (const byte of Buffer.from(arg, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9/._:,=+@-]/.test(c) ? c : `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return out + '"';
}

export function formatCommand(name: string, args: readonly (string | number)[]): string {
  const quoted = args.map((a) => (typeof a === 'number' ? String(a) : quoteGuestfishArg(a)));
  return ['-' + name, ...quoted].join(' ');
}

export class MarkerFactory {
  private readonly prefix = randomBytes(12).toString('hex');
  private next = 0;
  create(): { stdout: Buffer; stderr: string; script: string } {
    const token = `${this.prefix}-${this.next++}`;
    const stdoutMark = `@@rtftp-end-${token}@@`;
    const stderrMark = `rtftp-end-${token}`;
    return {
      stdout: Buffer.from(stdoutMark + '\n'),
      stderr: `${stderrMark}: unknown command`,
      script: `echo ${stdoutMark}\n-${stderrMark}\n`,
    };
  }
}

/**
 * Collects one stream's bytes and cuts them at markers, in order. Memory is bounded by
 * what one reply can hold (a pread of at most 2 MiB), as the caller never queues many.
 */
export class MarkerSplitter {
  private buf = Buffer.alloc(64 * 1024);
  private length = 0;
  /** Where the next search starts: bytes before it are known not to start the marker. */
  private searchFrom = 0;

  push(data: Buffer): void {
    if (this.length + data.length > this.buf.length) {
      const bigger = Buffer.alloc(Math.max(this.buf.length * 2, this.length + data.length));
      this.buf.copy(bigger, 0, 0, this.length);
      this.buf = bigger;
    }
    data.copy(this.buf, this.length);
    this.length += data.length;
  }

  /** The bytes before `marker` (a copy), removing them and the marker; null while it has not come. */
  take(marker: Buffer): Buffer | null {
    const at = this.buf.subarray(0, this.length).indexOf(marker, this.searchFrom);
    if (at < 0) {
      this.searchFrom = Math.max(0, this.length - marker.length + 1);
      return null;
    }
    const reply = Buffer.from(this.buf.subarray(0, at));
    const restStart = at + marker.length;
    this.buf.copy(this.buf, 0, restStart, this.length);
    this.length -= restStart;
    this.searchFrom = 0;
    return reply;
  }

  get pending(): number {
    return this.length;
  }
}

/**
 * The error text of one request's stderr segment, or null when it succeeded.
 * guestfish reports failures of commands read from stdin as
 * `*stdin*:LINE: libguestfs: error: NAME: MESSAGE` (or `*stdin*:LINE: ...` for its own
 * parse errors); anything else there (warnings, the help text after the first unknown
 * command) is not a failure.
 */
export function errorOfStderr(segment: string): string | null {
  const errors = segment
    .split('\n')
    .filter((l) => /^\*stdin\*:\d+:/.test(l) || l.startsWith('libguestfs: error:'))
    .map((l) => l.replace(/^\*stdin\*:\d+: /, '').replace(/^libguestfs: error: /, ''));
  return errors.length ? errors.join('; ') : null;
}

/** Parses `statns`/`lstatns` output ("st_size: 2\n...") into numbers. */
export function parseStatOutput(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(st_[a-z_0-9]+): (-?\d+)$/.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;

/** What a stat mode is, as far as serving goes: a file, a directory, or one never served. */
export function modeKind(mode: number): 'file' | 'dir' | NotRegularKind {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'dir';
    case 0o010000:
      return 'fifo';
    case 0o020000:
    case 0o060000:
      return 'device';
    case 0o140000:
      return 'socket';
    case 0o120000:
      return 'symlink';
    default:
      return 'other';
  }
}
