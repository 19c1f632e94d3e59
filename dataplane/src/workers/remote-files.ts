/**
 * HTTP boot in worker mode (docs/performance.md): a client's disk lives in the worker that
 * serves it, and a TCP connection cannot be handed to a worker thread, so the main thread
 * keeps the HTTP side and reads the client's files through its worker, by message.
 *
 * - Main thread: {@link RemoteViewSource}, the one FileSource of the HTTP server there. An
 *   open goes to the worker of the request's client (the same routing as TFTP's hand-off),
 *   which resolves the request in its own view — `<root>/<ip>/`, the client's disk,
 *   `default/` — exactly as for TFTP; reads and the close follow by message.
 * - Worker: {@link WorkerFileDesk}, which holds the files opened for the main thread.
 *
 * Bounded: a read moves at most {@link MAX_REMOTE_READ} bytes, in a buffer transferred (not
 * copied) to the main thread; the files held open are the HTTP transfers admission let in;
 * a worker that does not answer in time fails that request or read only; a worker that dies
 * fails what was waiting on it at once, and one not running (restarting after a crash)
 * fails what is asked of it at once.
 *
 * A file's handle is the id of the open that made it. The main thread never reuses an id, so
 * a handle from before a worker restarted names nothing in the new worker: a transfer that
 * outlived its worker can never read, or close, a file another client opened since.
 */
import type { Logger } from 'pino';
import { resolveInView } from '../sources/view.ts';
import type { FileSource, OpenResult, OpenedFile, ViewRequest } from '../sources/source.ts';

/** The largest read one message may ask for (the HTTP server reads 256 KiB at a time). */
export const MAX_REMOTE_READ = 1024 * 1024;

/** An open's answer, as plain data: a found file is a handle in the worker. */
export type RemoteOpenResult =
  | {
      status: 'found';
      handle: number;
      size: number;
      mtimeMs?: number;
      source: string;
      location: string;
    }
  | Exclude<OpenResult, { status: 'found' }>;

/** What the main thread asks of a worker's desk. */
export type FileRequest =
  | { type: 'file-open'; id: number; request: ViewRequest }
  /** The open `id` is no longer wanted: stop waiting (a disk still connecting). */
  | { type: 'file-abort'; id: number }
  | {
      type: 'file-read';
      id: number;
      handle: number;
      length: number;
      position: number;
      /** The buffer of this file's previous read, given back (transferred) to be read into again. */
      buffer?: ArrayBuffer;
    }
  | { type: 'file-close'; handle: number };

/** A worker desk's answers. */
export type FileAnswer =
  | { type: 'file-opened'; id: number; result: RemoteOpenResult }
  | { type: 'file-read-done'; id: number; bytes: Uint8Array }
  | { type: 'file-read-failed'; id: number; message: string };

interface Waiting {
  worker: number;
  settle(answer: FileAnswer | Error): void;
}

export interface RemoteViewOptions {
  /** The worker serving a client (client-routing.ts), by its canonical address. */
  workerOf(clientIp: string): number;
  /** False when the worker is not running (restarting after a crash): nothing was sent. */
  post(worker: number, m: FileRequest, transfer?: ArrayBuffer[]): boolean;
  /** An open not answered within this long is `unavailable` (--disk-wait and budgets fit in it). */
  openTimeoutMs: number;
  /** A read not answered within this long fails (the transfer would have stalled anyway). */
  readTimeoutMs: number;
}

/** The main thread's view of every client, each resolved in the worker serving it. */
export class RemoteViewSource implements FileSource {
  readonly name = 'worker';
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  /** Each worker's restarts so far: a file opened in an earlier one is gone. */
  private readonly generations = new Map<number, number>();

  constructor(private readonly opts: RemoteViewOptions) {}

  /** Calls waiting for an answer (for tests and /status). */
  get pendingCalls(): number {
    return this.waiting.size;
  }

  async open(request: ViewRequest, signal: AbortSignal): Promise<OpenResult> {
    const worker = this.opts.workerOf(request.clientIp);
    const id = this.nextId++;
    const onAbort = () => this.opts.post(worker, { type: 'file-abort', id });
    signal.addEventListener('abort', onAbort, { once: true });
    let answer: FileAnswer | Error;
    try {
      answer = await this.call(worker, id, this.opts.openTimeoutMs, () =>
        this.opts.post(worker, { type: 'file-open', id, request }),
      );
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    if (answer instanceof Error) {
      // Given up on (timeout): the worker stops waiting for the disk and spending the open's
      // budget, and a file it finds all the same is given back (onAnswer). After an exit the
      // abort names nothing: ids are never reused.
      this.opts.post(worker, { type: 'file-abort', id });
      // Not "unavailable": the client's whole view is in that worker, so there is nothing
      // else to fall back to, and "not found" would be a lie. The client retries (503).
      return { status: 'not-ready', detail: answer.message };
    }
    if (answer.type !== 'file-opened') return { status: 'not-ready', detail: 'bad answer' };
    const r = answer.result;
    if (r.status !== 'found') return r;
    return {
      status: 'found',
      source: r.source,
      location: r.location,
      file: this.remoteFile(worker, this.generationOf(worker), r),
    };
  }

  /** A desk's answer, from the worker `worker`. */
  onAnswer(worker: number, m: FileAnswer): void {
    const w = this.waiting.get(m.id);
    if (w && w.worker === worker) return w.settle(m);
    // Its open gave up (timeout): the worker still holds the file; give it back.
    if (m.type === 'file-opened' && m.result.status === 'found')
      this.opts.post(worker, { type: 'file-close', handle: m.result.handle });
  }

  /**
   * A worker died: everything waiting on it fails now, not at its timeout, and the files it
   * held are gone (their transfers fail at their next read).
   */
  workerGone(worker: number): void {
    this.generations.set(worker, this.generationOf(worker) + 1);
    for (const w of [...this.waiting.values()])
      if (w.worker === worker) w.settle(new Error(`worker ${worker} exited`));
  }

  private generationOf(worker: number): number {
    return this.generations.get(worker) ?? 0;
  }

  private remoteFile(
    worker: number,
    generation: number,
    r: Extract<RemoteOpenResult, { status: 'found' }>,
  ): OpenedFile {
    let closed = false;
    const gone = () => this.generationOf(worker) !== generation;
    // The previous read's buffer, once copied out: it goes back with the next read, so a
    // transfer keeps reusing one buffer instead of making one per read.
    let spare: ArrayBuffer | undefined;
    return {
      size: r.size,
      ...(r.mtimeMs !== undefined ? { mtimeMs: r.mtimeMs } : {}),
      read: async (buf, offset, length, position) => {
        if (closed) throw new Error('file closed');
        if (gone()) throw new Error(`worker ${worker} exited`);
        const id = this.nextId++;
        const buffer = spare;
        spare = undefined;
        const answer = await this.call(worker, id, this.opts.readTimeoutMs, () =>
          this.opts.post(
            worker,
            {
              type: 'file-read',
              id,
              handle: r.handle,
              length: Math.min(length, MAX_REMOTE_READ),
              position,
              ...(buffer ? { buffer } : {}),
            },
            buffer ? [buffer] : undefined,
          ),
        );
        if (answer instanceof Error) throw answer;
        if (answer.type === 'file-read-failed') throw new Error(answer.message);
        if (answer.type !== 'file-read-done') throw new Error('bad answer');
        const n = Math.min(answer.bytes.byteLength, length);
        buf.set(answer.bytes.subarray(0, n), offset);
        spare = answer.bytes.buffer as ArrayBuffer;
        return n;
      },
      close: async () => {
        if (closed) return;
        closed = true;
        if (!gone()) this.opts.post(worker, { type: 'file-close', handle: r.handle });
      },
    };
  }

  private call(
    worker: number,
    id: number,
    timeoutMs: number,
    send: () => boolean,
  ): Promise<FileAnswer | Error> {
    return new Promise((resolve) => {
      const timer = setTimeout(
        () => settle(new Error(`worker ${worker} did not answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const settle = (a: FileAnswer | Error) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(a);
      };
      this.waiting.set(id, { worker, settle });
      if (!send()) settle(new Error(`worker ${worker} is not running`));
    });
  }
}

/**
 * A worker's side: opens files in the worker's own view chain for the main thread's HTTP
 * server and serves their reads. What it holds is what the main thread's admitted
 * transfers hold; `closeAll` gives it back at drain.
 */
export class WorkerFileDesk {
  /** By handle: the id of the open that made the file (never reused by the main thread). */
  private readonly files = new Map<number, OpenedFile>();
  private readonly opening = new Map<number, AbortController>();

  constructor(
    private readonly sources: readonly FileSource[],
    private readonly post: (m: FileAnswer, transfer?: ArrayBuffer[]) => void,
    private readonly logger: Logger,
  ) {}

  get openFiles(): number {
    return this.files.size;
  }

  /** Takes the main thread's file messages; false for any other. */
  handle(m: { type: string }): boolean {
    const r = m as FileRequest;
    switch (r.type) {
      case 'file-open':
        void this.open(r.id, r.request);
        return true;
      case 'file-abort':
        this.opening.get(r.id)?.abort();
        return true;
      case 'file-read':
        void this.read(r.id, r.handle, r.length, r.position, r.buffer);
        return true;
      case 'file-close': {
        const file = this.files.get(r.handle);
        this.files.delete(r.handle);
        void file?.close();
        return true;
      }
      default:
        return false;
    }
  }

  async closeAll(): Promise<void> {
    for (const c of this.opening.values()) c.abort();
    const files = [...this.files.values()];
    this.files.clear();
    await Promise.all(files.map((f) => f.close()));
  }

  private async open(id: number, request: ViewRequest): Promise<void> {
    const abort = new AbortController();
    this.opening.set(id, abort);
    let result: RemoteOpenResult;
    try {
      const resolved = await resolveInView(this.sources, request, abort.signal);
      for (const u of resolved.unavailable)
        this.logger.warn(
          { client: request.clientIp, file: request.raw, source: u.source, reason: u.reason },
          'Source unavailable',
        );
      const r = resolved.result;
      if (r.status !== 'found') result = r;
      else if (abort.signal.aborted) {
        await r.file.close();
        result = { status: 'not-found' };
      } else {
        this.files.set(id, r.file);
        result = {
          status: 'found',
          handle: id,
          size: r.file.size,
          ...(r.file.mtimeMs !== undefined ? { mtimeMs: r.file.mtimeMs } : {}),
          source: r.source,
          location: r.location,
        };
      }
    } catch (err) {
      result = { status: 'unavailable', reason: (err as Error).message };
    } finally {
      this.opening.delete(id);
    }
    this.post({ type: 'file-opened', id, result });
  }

  private async read(
    id: number,
    handle: number,
    length: number,
    position: number,
    given: ArrayBuffer | undefined,
  ): Promise<void> {
    const file = this.files.get(handle);
    if (!file) return this.post({ type: 'file-read-failed', id, message: 'file not open' });
    if (!(length > 0 && length <= MAX_REMOTE_READ))
      return this.post({ type: 'file-read-failed', id, message: `bad read length ${length}` });
    // A buffer of its own (never Node's shared pool), so it can be transferred, not copied:
    // the one the main thread gave back when it is large enough.
    const bytes =
      given && given.byteLength >= length
        ? new Uint8Array(given, 0, length)
        : new Uint8Array(length);
    try {
      const n = await file.read(Buffer.from(bytes.buffer), 0, length, position);
      const out = bytes.subarray(0, n);
      this.post({ type: 'file-read-done', id, bytes: out }, [bytes.buffer as ArrayBuffer]);
    } catch (err) {
      this.post({ type: 'file-read-failed', id, message: (err as Error).message });
    }
  }
}
