/**
 * The disk as the filesystems see it: byte-range reads served from a byte-bounded LRU of
 * fixed-size pages, with reads of the same page merged while in flight.
 *
 * Freshness by epochs: every read names the oldest epoch it accepts. A page is tagged with
 * the epoch current when its fetch was sent. Opening a file takes a new epoch, so every
 * block it reads (directory entries, inode, FAT, data) was fetched after the open began:
 * what the client wrote before that open is seen, whatever the cache held.
 */
import { check } from './errors.ts';

/** Where the bytes come from: an NbdClient, or a Buffer in unit tests. */
export interface RawDisk {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

/** A byte range of the disk (the whole disk or one partition), read with an epoch. */
export interface BlockReader {
  readonly size: number;
  read(offset: number, length: number, epoch: number): Promise<Buffer>;
}

export interface CacheStats {
  hits: number;
  misses: number;
  bytesFetched: number;
}

export const PAGE_SIZE = 64 * 1024;
export const DEFAULT_CACHE_BYTES = 4 * 1024 * 1024;

interface Page {
  buf: Buffer;
  epoch: number;
}

export class CachedDisk implements BlockReader {
  private readonly pages = new Map<number, Page>();
  private readonly inFlight = new Map<number, { promise: Promise<Buffer>; epoch: number }>();
  private cachedBytes = 0;
  private epochCounter = 1;
  readonly stats: CacheStats = { hits: 0, misses: 0, bytesFetched: 0 };

  constructor(
    private readonly raw: RawDisk,
    private readonly maxBytes: number = DEFAULT_CACHE_BYTES,
    /** Told about every hit, miss and fetch (metrics). */
    private readonly onStat?: (kind: 'hit' | 'miss', bytes: number) => void,
  ) {}

  get size(): number {
    return this.raw.size;
  }

  /** A new epoch: reads with it see nothing fetched before this call. */
  newEpoch(): number {
    return ++this.epochCounter;
  }

  async read(offset: number, length: number, epoch: number): Promise<Buffer> {
    check(
      Number.isSafeInteger(offset) && offset >= 0 && length >= 0 && offset + length <= this.size,
      `read of ${length} bytes at ${offset} lies outside the ${this.size}-byte disk`,
    );
    if (length === 0) return Buffer.alloc(0);
    const first = Math.floor(offset / PAGE_SIZE);
    const last = Math.floor((offset + length - 1) / PAGE_SIZE);
    if (first === last) {
      const page = await this.page(first, epoch);
      const at = offset - first * PAGE_SIZE;
      return page.subarray(at, at + length);
    }
    const pages = [];
    for (let p = first; p <= last; p++) pages.push(this.page(p, epoch));
    const whole = Buffer.concat(await Promise.all(pages));
    const at = offset - first * PAGE_SIZE;
    return whole.subarray(at, at + length);
  }

  private page(n: number, epoch: number): Promise<Buffer> {
    const cached = this.pages.get(n);
    if (cached && cached.epoch >= epoch) {
      // Map order is the LRU order: move to the back.
      this.pages.delete(n);
      this.pages.set(n, cached);
      this.stats.hits++;
      this.onStat?.('hit', 0);
      return Promise.resolve(cached.buf);
    }
    const pending = this.inFlight.get(n);
    if (pending && pending.epoch >= epoch) return pending.promise;
    this.stats.misses++;
    const tag = this.epochCounter;
    const start = n * PAGE_SIZE;
    const promise = this.raw.read(start, Math.min(PAGE_SIZE, this.size - start)).then(
      (buf) => {
        if (this.inFlight.get(n)?.promise === promise) this.inFlight.delete(n);
        this.stats.bytesFetched += buf.length;
        this.onStat?.('miss', buf.length);
        this.store(n, { buf, epoch: tag });
        return buf;
      },
      (err: unknown) => {
        if (this.inFlight.get(n)?.promise === promise) this.inFlight.delete(n);
        throw err;
      },
    );
    this.inFlight.set(n, { promise, epoch: tag });
    return promise;
  }

  private store(n: number, page: Page): void {
    const old = this.pages.get(n);
    if (old) {
      if (old.epoch > page.epoch) return;
      this.pages.delete(n);
      this.cachedBytes -= old.buf.length;
    }
    if (page.buf.length > this.maxBytes) return;
    this.pages.set(n, page);
    this.cachedBytes += page.buf.length;
    for (const [key, p] of this.pages) {
      if (this.cachedBytes <= this.maxBytes) break;
      this.pages.delete(key);
      this.cachedBytes -= p.buf.length;
    }
  }

  get cachedByteCount(): number {
    return this.cachedBytes;
  }
}

/** A partition: a bounds-checked window on the disk. */
export class DiskRange implements BlockReader {
  constructor(
    private readonly disk: BlockReader,
    readonly start: number,
    readonly size: number,
  ) {}

  read(offset: number, length: number, epoch: number): Promise<Buffer> {
    check(
      Number.isSafeInteger(offset) && offset >= 0 && length >= 0 && offset + length <= this.size,
      `read of ${length} bytes at ${offset} lies outside the ${this.size}-byte partition`,
    );
    return this.disk.read(this.start + offset, length, epoch);
  }
}
