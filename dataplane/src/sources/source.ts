/**
 * The client's view is a chain of sources, first hit wins:
 *   <root>/<ip>/  →  the NBD disk of <root>/<ip>.nbd  →  <root>/default/
 * Each source answers one question for one request: "here is the file", "not mine"
 * (next source), "refused" (stop: nothing is served), or "unavailable" (this source
 * could not answer now: logged, counted, and the chain goes on).
 */

/** A request already validated by {@link parseRequestPath}: safe components, no `..`. */
export interface ViewRequest {
  /** Canonical client address (see canonicalIp in common/src/nbd-config.ts). */
  readonly clientIp: string;
  /** Path components relative to the view's root, each non-empty, never `.` or `..`. */
  readonly components: readonly string[];
  /** The file name as the client sent it, for logs. */
  readonly raw: string;
}

/**
 * An open file. Reads are positional so a transfer can read ahead a bounded window
 * and re-read for a retransmission without keeping the file in memory.
 */
export interface OpenedFile {
  /** Size in bytes when opened. */
  readonly size: number;
  /**
   * Last modification, ms since the epoch, from the source's own metadata when opened
   * (fstat; the ext inode; the FAT entry's date and time; guestfish's statns): HTTP's
   * Last-Modified and ETag. Absent when the source holds no valid time (a FAT date of 0).
   */
  readonly mtimeMs?: number;
  /** Reads up to `length` bytes at `position` into `buf` at `offset`; resolves the count (0 at EOF). */
  read(buf: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Releases the file; safe to call twice. */
  close(): Promise<void>;
}

/** What a name can be besides a regular file or a directory; never served. */
export type NotRegularKind = 'fifo' | 'device' | 'socket' | 'symlink' | 'other';

/**
 * The refusal reason for a name that is not a regular file, from a local dir or a disk
 * alike: one stable reason per kind (a metric label), e.g. `not a regular file (fifo)`.
 */
export function notRegularReason(kind: NotRegularKind): string {
  return `not a regular file (${kind})`;
}

export type OpenResult =
  | {
      status: 'found';
      file: OpenedFile;
      /** Which source served it, for logs and metrics: 'client-dir', 'nbd', 'default'. */
      source: string;
      /** Where it was found, for logs: a local path or `<disk>:<path inside the disk>`. */
      location: string;
    }
  | { status: 'not-found' }
  | { status: 'refused'; reason: string }
  /**
   * This source serves the client but cannot yet (a disk still connecting past
   * --disk-wait): the chain stops and the client gets ERROR 0 "disk not ready" and
   * retries, never default/'s files.
   */
  | {
      status: 'not-ready';
      /** Why, for the log, when it is not a disk still connecting (a worker not answering). */
      detail?: string;
    }
  | { status: 'unavailable'; reason: string };

export interface FileSource {
  /** Short stable name for logs and metric labels. */
  readonly name: string;
  /**
   * Opens the file for this request, or says why not. Must not throw for expected
   * failures; `signal` aborts a wait (e.g. a disk still connecting) when the transfer
   * is abandoned. May wait (bounded) — other clients' requests are never delayed by it.
   */
  open(request: ViewRequest, signal: AbortSignal): Promise<OpenResult>;
}
